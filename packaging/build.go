package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// revision is the commit the packages are built from.
type revision struct {
	short string    // abbreviated hash, "" outside a git checkout
	time  time.Time // commit time: every file's mtime, so builds repeat exactly
}

// gitRevision reads the checked-out commit of root. Outside a git
// checkout (a source tarball) it returns the zero revision and the time
// of SOURCE_DATE_EPOCH or now.
func gitRevision(ctx context.Context, root string) (revision, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "log", "-1", "--format=%h %ct").Output()
	if err != nil {
		t := time.Now()
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			sec, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return revision{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
			}
			t = time.Unix(sec, 0)
		}
		return revision{time: t.UTC()}, nil
	}
	hash, ct, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	sec, err := strconv.ParseInt(ct, 10, 64)
	if !ok || err != nil {
		return revision{}, fmt.Errorf("git log: unexpected output %q", out)
	}
	return revision{short: hash, time: time.Unix(sec, 0).UTC()}, nil
}

// artifacts are the files built from the code.
type artifacts struct {
	binary     string // static arpcheck for the target
	man        string // arpcheck.1.gz
	completion string // bash completion script
}

// buildArtifacts builds arpcheck for goarch into dir, and writes the man
// page and the bash completion the binary prints. A release version is
// stamped into the binary (main.version); without one the binary reports
// its VCS revision.
func buildArtifacts(ctx context.Context, root, dir, goarch, version string) (artifacts, error) {
	a := artifacts{
		binary:     filepath.Join(dir, "arpcheck"),
		man:        filepath.Join(dir, "arpcheck.1.gz"),
		completion: filepath.Join(dir, "arpcheck.bash"),
	}
	if err := goBuild(ctx, root, a.binary, goarch, version); err != nil {
		return a, err
	}
	// The man page and completion come from running arpcheck: a binary
	// for another architecture gets a native twin to ask.
	native := a.binary
	if goarch != runtime.GOARCH {
		native = filepath.Join(dir, "arpcheck-native")
		if err := goBuild(ctx, root, native, runtime.GOARCH, version); err != nil {
			return a, err
		}
	}
	man, err := output(ctx, native, "man")
	if err != nil {
		return a, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Name = "arpcheck.1" // no ModTime: the same page gives the same bytes
	if _, err := zw.Write(man); err != nil {
		return a, err
	}
	if err := zw.Close(); err != nil {
		return a, err
	}
	if err := os.WriteFile(a.man, gz.Bytes(), 0o644); err != nil {
		return a, err
	}
	comp, err := output(ctx, native, "completion", "bash")
	if err != nil {
		return a, err
	}
	return a, os.WriteFile(a.completion, comp, 0o644)
}

// goBuild builds ./cmd/arpcheck static and stripped, as the README's
// release build does.
func goBuild(ctx context.Context, root, out, goarch, version string) error {
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X main.version=" + version
	}
	// -buildvcs=auto overrides a GOFLAGS=-buildvcs=false, so that the
	// binary records the commit when built from a checkout.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=auto", "-ldflags="+ldflags, "-o", out, "./cmd/arpcheck")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/arpcheck for %s: %w", goarch, err)
	}
	return nil
}

// output runs bin with args and returns what it printed.
func output(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("arpcheck %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("arpcheck %s printed nothing", strings.Join(args, " "))
	}
	return out, nil
}
