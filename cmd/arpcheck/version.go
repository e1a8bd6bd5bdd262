package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release, set when building a release with
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/arpcheck
//
// Left empty, the module version recorded in the binary is used (set by
// go install module@version), or "devel".
var version string

// versionString returns the version this binary reports.
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// writeVersion writes the version and what it was built from.
func writeVersion(w io.Writer) error {
	line := "arpcheck " + versionString()
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			line += " (" + rev
			if modified == "true" {
				line += ", modified"
			}
			line += ")"
		}
	}
	_, err := fmt.Fprintf(w, "%s %s/%s %s\n", line, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return err
}
