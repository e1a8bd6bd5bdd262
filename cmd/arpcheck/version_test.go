package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestNewBuildInfo(t *testing.T) {
	vcs := func(rev, time, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: time}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "f5e191ddfcb5d3f064f14ebe3d18a9d5717f9b20"
	tests := []struct {
		name    string
		release string
		bi      *debug.BuildInfo
		want    string // text
	}{
		{name: "no build information", bi: nil,
			want: "arpcheck devel (no revision recorded: see arpcheck version --help) linux/amd64 go1.26.0"},
		{name: "devel without vcs", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "(devel)"}},
			want: "arpcheck devel (no revision recorded: see arpcheck version --help) linux/amd64 go1.26.8"},
		{name: "go install module@version", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "v1.4.0"}},
			want: "arpcheck v1.4.0 linux/amd64 go1.26.8"},
		{name: "git checkout, clean",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "v0.0.0-20260102030405-f5e191ddfcb5"},
				Settings: vcs(rev, "2026-01-02T03:04:05Z", "false")},
			want: "arpcheck v0.0.0-20260102030405-f5e191ddfcb5 (revision " + rev + ", committed 2026-01-02T03:04:05Z, unmodified) linux/amd64 go1.26.8"},
		{name: "git checkout, modified, built with an older Go",
			bi: &debug.BuildInfo{GoVersion: "go1.23.1", Main: debug.Module{Path: "m", Version: "(devel)"},
				Settings: vcs(rev, "2026-01-02T03:04:05Z", "true")},
			want: "arpcheck devel (revision " + rev + ", committed 2026-01-02T03:04:05Z, modified) linux/amd64 go1.23.1"},
		{name: "ldflags wins over the module version", release: "v9.8.7",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "v1.4.0"}, Settings: vcs(rev, "", "false")},
			want: "arpcheck v9.8.7 (revision " + rev + ", unmodified) linux/amd64 go1.26.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newBuildInfo(tt.release, tt.bi, "go1.26.0", "linux", "amd64").text()
			if got != tt.want {
				t.Errorf("text:\ngot  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestWriteVersionJSON(t *testing.T) {
	tests := []struct {
		name string
		b    buildInfo
		want string
	}{
		{name: "vcs", b: buildInfo{Release: "v1.0.0", Module: "m", HasVCS: true, Revision: "abc", Time: "2026-01-02T03:04:05Z",
			Modified: true, Go: "go1.26.8", OS: "linux", Arch: "arm64"},
			want: `{"version":1,"command":"version","release":"v1.0.0","module":"m","revision":"abc","vcs_time":"2026-01-02T03:04:05Z","modified":true,"go":"go1.26.8","os":"linux","arch":"arm64"}`},
		{name: "no vcs: modified is null", b: buildInfo{Release: "devel", Go: "go1.26.8", OS: "linux", Arch: "amd64"},
			want: `{"version":1,"command":"version","release":"devel","module":"","revision":"","vcs_time":"","modified":null,"go":"go1.26.8","os":"linux","arch":"amd64"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf, compact bytes.Buffer
			if err := writeVersion(&buf, formatJSON, tt.b); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&compact, buf.Bytes()); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, buf.String())
			}
			if got := compact.String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// version reports the revision a binary was built from, and whether the
// tree was modified, end to end: the module's source is copied into a new
// git repository with a commit of its own (so the test does not depend on
// this repository's commit, or on its being a worktree, where go build
// records no revision), built there, changed, built again, and tagged.
func TestBinaryVersionFromGit(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		missing(t, "no go command")
	}
	gitCmd, err := exec.LookPath("git")
	if err != nil {
		missing(t, "no git command")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	copyModule(t, root, src)

	const when = "2026-01-02T03:04:05Z"
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gitCmd, args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
			"GIT_AUTHOR_DATE="+when, "GIT_COMMITTER_DATE="+when, "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "test commit")
	rev := git("rev-parse", "HEAD")

	bin := filepath.Join(t.TempDir(), "arpcheck")
	build := func() jsonVersion {
		t.Helper()
		// -buildvcs=true on the command line overrides a -buildvcs=false
		// in GOFLAGS.
		cmd := exec.Command(goCmd, "build", "-buildvcs=true", "-o", bin, "./cmd/arpcheck")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "version", "--format", "json").Output()
		if err != nil {
			t.Fatalf("arpcheck version --format json: %v", err)
		}
		var v jsonVersion
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("arpcheck version --format json: %v\n%s", err, out)
		}
		text, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("arpcheck version: %v", err)
		}
		t.Logf("arpcheck version: %s", text)
		return v
	}
	check := func(step string, got jsonVersion, wantRelease string, wantModified bool) {
		t.Helper()
		if got.Revision != rev || got.Time != when || got.Modified == nil || *got.Modified != wantModified ||
			got.Module != "github.com/arpcheck/arpcheck" || !strings.HasPrefix(got.Go, "go1.") {
			t.Errorf("%s: got %+v (modified %v)\nwant revision %s, vcs_time %s, modified %v", step, got,
				got.Modified != nil && *got.Modified, rev, when, wantModified)
		}
		if !strings.HasPrefix(got.Release, wantRelease) {
			t.Errorf("%s: release %q, want %q...", step, got.Release, wantRelease)
		}
	}

	v := build()
	check("clean tree", v, "v0.0.0-20260102030405-"+rev[:12], false)
	if strings.HasSuffix(v.Release, "+dirty") {
		t.Errorf("clean tree: release %q marked dirty", v.Release)
	}

	f := filepath.Join(src, "cmd", "arpcheck", "main.go")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, "\n// A change not committed.\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	v = build()
	check("modified tree", v, "v0.0.0-20260102030405-"+rev[:12], true)
	if !strings.HasSuffix(v.Release, "+dirty") {
		t.Errorf("modified tree: release %q, want a +dirty suffix", v.Release)
	}

	git("checkout", "-q", "--", ".")
	git("tag", "v1.2.3")
	check("tagged commit", build(), "v1.2.3", false)
}

// missing skips the test for want of a tool, or fails it when CI is
// "true": a skipped test in CI hides a failure.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " (CI is true: a skipped test is a failure)")
	}
	t.Skip(why)
}

// copyModule copies the module's source files at root into dst: every
// regular file except those under .git and under directories of other
// modules (with a go.mod of their own), which the build does not need.
func copyModule(t *testing.T, root, dst string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || d.Name() == ".git" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the module: %v", err)
	}
}
