package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goreleaser/nfpm/v2/files"
)

const (
	// binaryPath is where the package puts arpcheck.
	binaryPath = "/usr/bin/arpcheck"
	// deployBinary is where the files of examples/deploy expect it (a
	// hand install); the packaged copies are rewritten to binaryPath.
	deployBinary = "/usr/local/bin/arpcheck"
)

// units are the systemd units of examples/deploy/systemd the package
// installs (not enabled).
var units = []string{"arpcheck.service", "arpcheck.timer", "arpcheck-watch.service"}

// packageContents lists the package's files: the artifacts, and the
// deployment files of examples/deploy, rewritten into dir for the
// package's paths.
func packageContents(root, dir string, a artifacts) (files.Contents, error) {
	deploy := filepath.Join(root, "examples", "deploy")
	c := files.Contents{
		file(a.binary, binaryPath, 0o755),
		file(a.man, "/usr/share/man/man1/arpcheck.1.gz", 0o644),
		file(a.completion, "/usr/share/bash-completion/completions/arpcheck", 0o644),
		file(filepath.Join(deploy, "systemd", "arpcheck.sysusers"), "/usr/lib/sysusers.d/arpcheck.conf", 0o644),
		file(filepath.Join(deploy, "systemd", "arpcheck.tmpfiles"), "/usr/lib/tmpfiles.d/arpcheck.conf", 0o644),
		file(filepath.Join(root, "LICENSE"), "/usr/share/doc/arpcheck/copyright", 0o644),
		// Not in /usr/lib/systemd/system/arpcheck-watch.service.d, where it
		// would always apply: the operator who wants the tracepoints copies
		// it to /etc/systemd/system/arpcheck-watch.service.d/.
		file(filepath.Join(deploy, "systemd", "arpcheck-watch.service.d", "tracepoints.conf"),
			"/usr/share/doc/arpcheck/examples/arpcheck-watch.service.d/tracepoints.conf", 0o644),
	}
	for _, u := range units {
		text, err := os.ReadFile(filepath.Join(deploy, "systemd", u))
		if err != nil {
			return nil, err
		}
		fixed := string(text)
		if strings.HasSuffix(u, ".service") {
			if fixed, err = rewriteBinary(fixed); err != nil {
				return nil, fmt.Errorf("examples/deploy/systemd/%s: %w", u, err)
			}
		}
		src := filepath.Join(dir, u)
		if err := os.WriteFile(src, []byte(fixed), 0o644); err != nil {
			return nil, err
		}
		c = append(c, file(src, "/usr/lib/systemd/system/"+u, 0o644))
	}

	text, err := os.ReadFile(filepath.Join(deploy, "cron", "arpcheck"))
	if err != nil {
		return nil, err
	}
	cron, err := disableCron(string(text))
	if err != nil {
		return nil, fmt.Errorf("examples/deploy/cron/arpcheck: %w", err)
	}
	src := filepath.Join(dir, "arpcheck.cron")
	if err := os.WriteFile(src, []byte(cron), 0o644); err != nil {
		return nil, err
	}
	cf := file(src, "/etc/cron.d/arpcheck", 0o644)
	cf.Type = files.TypeConfigNoReplace // the operator enables it by editing it
	c = append(c, cf)
	return c, nil
}

// file is a regular file of the package, owned by root.
func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{
		Source:      src,
		Destination: dst,
		FileInfo:    &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode},
	}
}

// rewriteBinary points a deployment file at the packaged binary. A file
// that does not name the hand-installed path is an error: the package
// would run something else.
func rewriteBinary(text string) (string, error) {
	if !strings.Contains(text, deployBinary) {
		return "", fmt.Errorf("does not run %s", deployBinary)
	}
	return strings.ReplaceAll(text, deployBinary, binaryPath), nil
}

// cronVariable is a crontab line setting an environment variable.
var cronVariable = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\s*=`)

// cronHeader explains the packaged cron file.
const cronHeader = `# Installed by the arpcheck package with its job commented out: nothing runs
# until you remove the "#" before the job line below. Use this, or
# systemctl enable --now arpcheck.timer, or arpcheck-watch.service: one of them.
#
`

// disableCron returns a cron.d file with every job line commented out
// and a header saying how to enable it, pointed at the packaged binary.
// A file without a job is an error.
func disableCron(text string) (string, error) {
	text, err := rewriteBinary(text)
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfter(text, "\n")
	jobs := 0
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || cronVariable.MatchString(t) {
			continue
		}
		lines[i] = "#" + line
		jobs++
	}
	if jobs == 0 {
		return "", fmt.Errorf("no job line")
	}
	return cronHeader + strings.Join(lines, ""), nil
}
