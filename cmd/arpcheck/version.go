package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is the release, set when building a release with
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/arpcheck
//
// Left empty, the module version recorded in the binary is used: the
// version given to go install module@version, or, for a build in a git
// checkout (Go 1.24 and later), the tag or a pseudo-version made from the
// commit, with "+dirty" when the tree was modified; "devel" when the
// binary records none.
var version string

// buildInfo is what a binary knows about how it was built.
type buildInfo struct {
	// Release is the version: set by -ldflags, else the module version,
	// else "devel".
	Release string
	// Module is the main module's path; empty when unknown.
	Module string
	// Revision, Time and Modified come from the version control system
	// (vcs.revision, vcs.time, vcs.modified), recorded by go build in a
	// git checkout unless -buildvcs=false. HasVCS reports whether they
	// were.
	HasVCS   bool
	Revision string
	Time     string
	Modified bool
	// Go is the Go version that built it; OS and Arch its target.
	Go, OS, Arch string
}

// readBuildInfo returns what this binary knows about its build.
func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return newBuildInfo(version, bi, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newBuildInfo makes a buildInfo from the version set by -ldflags
// (release, possibly empty) and the Go build information (bi, nil when
// the binary has none). goVersion, goos and goarch are the runtime's.
func newBuildInfo(release string, bi *debug.BuildInfo, goVersion, goos, goarch string) buildInfo {
	b := buildInfo{Release: release, Go: goVersion, OS: goos, Arch: goarch}
	if bi == nil {
		if b.Release == "" {
			b.Release = "devel"
		}
		return b
	}
	b.Module = bi.Main.Path
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	if b.Release == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Release = bi.Main.Version
	}
	if b.Release == "" {
		b.Release = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision, b.HasVCS = s.Value, true
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionString returns the version this binary reports.
func versionString() string { return readBuildInfo().Release }

// noVCSHint stands for the revision of a build that recorded neither a
// version nor a revision; the command's description says why.
const noVCSHint = "no revision recorded: see arpcheck version --help"

// text is the version as one line: the release, then what it was built
// from in brackets, then the target and the Go version.
func (b buildInfo) text() string {
	var from []string
	if b.HasVCS {
		from = append(from, "revision "+b.Revision)
		if b.Time != "" {
			from = append(from, "committed "+b.Time)
		}
		if b.Modified {
			from = append(from, "modified")
		} else {
			from = append(from, "unmodified")
		}
	} else if b.Release == "devel" {
		from = append(from, noVCSHint)
	}
	line := "arpcheck " + b.Release
	if len(from) > 0 {
		line += " (" + strings.Join(from, ", ") + ")"
	}
	return line + " " + b.OS + "/" + b.Arch + " " + b.Go
}

// jsonVersion is the JSON of arpcheck version --format json.
type jsonVersion struct {
	Version  int    `json:"version"` // of this JSON's layout, as in the reports
	Command  string `json:"command"`
	Release  string `json:"release"`
	Module   string `json:"module"`
	Revision string `json:"revision"` // empty when not recorded
	Time     string `json:"vcs_time"` // the commit's time, RFC 3339; empty when not recorded
	Modified *bool  `json:"modified"` // null when not recorded
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

// writeVersion writes b in format (text or JSON) to w.
func writeVersion(w io.Writer, format string, b buildInfo) error {
	if format == formatJSON {
		j := jsonVersion{Version: 1, Command: "version", Release: b.Release, Module: b.Module,
			Revision: b.Revision, Time: b.Time, Go: b.Go, OS: b.OS, Arch: b.Arch}
		if b.HasVCS {
			j.Modified = &b.Modified
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
	}
	_, err := fmt.Fprintln(w, b.text())
	return err
}

// versionCommand is `arpcheck version`.
func (e *env) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the revision it was built from and the Go version",
		Description: "The release (set with -ldflags at build time, else the module version that\n" +
			"go install or a build in a git checkout recorded), the git revision, its\n" +
			"commit time and whether the tree had uncommitted changes, the target and the\n" +
			"Go version.\n\n" +
			"A build records no revision when it was built outside a git checkout, in a\n" +
			"git worktree, or with -buildvcs=false (which GOFLAGS may hold: go env GOFLAGS).\n" +
			"Build with go build -buildvcs=true in a git checkout, with go install\n" +
			"module@version, or with -ldflags '-X main.version=v1.2.3'.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagFormat, EnvVars: envVars(flagFormat), Value: formatText,
				Usage: "output format: text or json"},
		},
		Action: func(c *cli.Context) error {
			format := c.String(flagFormat)
			if !slices.Contains([]string{formatText, formatJSON}, format) {
				return usageError(c, "--format %q: want text or json", format)
			}
			if c.Args().Present() {
				return usageError(c, "version takes no arguments")
			}
			return writeVersion(e.stdout, format, readBuildInfo())
		},
		OnUsageError: onUsageError,
	}
}
