package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// The systemd units of examples/deploy/systemd that run arpcheck, and
// where an enabled unit has its symbolic link (systemctl enable).
var (
	runUnits = []string{"arpcheck-watch.service", "arpcheck.timer"}
	unitDirs = []string{"etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}
	// cronFiles are patterns of the crontabs cron reads.
	cronFiles = []string{"etc/crontab", "etc/cron.d/*", "var/spool/cron/crontabs/*", "var/spool/cron/*"}
)

// ReadRuns finds how arpcheck runs on the host whose root file system is
// files (os.DirFS("/")): processes running arpcheck watch (from
// proc/*/cmdline), the systemd units of examples/deploy/systemd enabled
// (a link in a *.wants directory), and crontabs with an active line that
// runs arpcheck verify or repair (the file of examples/deploy/cron
// installed in etc/cron.d, or any other). It only reads; files it may not
// read (another user's crontab, when not root) are passed over.
func ReadRuns(files fs.FS) (Runs, error) {
	var r Runs
	procs, err := fs.ReadDir(files, "proc")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("audit: list processes: %w", err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		cmdline, err := fs.ReadFile(files, path.Join("proc", p.Name(), "cmdline"))
		if err != nil {
			continue // gone, or not ours to read
		}
		if isWatch(cmdline) {
			r.WatchPIDs = append(r.WatchPIDs, pid)
		}
	}
	slices.Sort(r.WatchPIDs)
	for _, dir := range unitDirs {
		for _, u := range runUnits {
			links, err := fs.Glob(files, dir+"/*.wants/"+u)
			if err != nil {
				return r, fmt.Errorf("audit: look for %s: %w", u, err)
			}
			for _, l := range links {
				r.Units = append(r.Units, u+" (/"+l+")")
			}
		}
	}
	for _, pattern := range cronFiles {
		names, err := fs.Glob(files, pattern)
		if err != nil {
			return r, fmt.Errorf("audit: look for crontabs: %w", err)
		}
		for _, name := range names {
			base := path.Base(name)
			// cron skips files in cron.d whose names hold a dot or end
			// in ~ (backups, dpkg leftovers).
			if strings.HasPrefix(name, "etc/cron.d/") && (strings.Contains(base, ".") || strings.HasSuffix(base, "~")) {
				continue
			}
			b, err := fs.ReadFile(files, name)
			if err != nil {
				continue // a directory, or not ours to read
			}
			if line, ok := cronRunsArpcheck(b); ok {
				r.Cron = append(r.Cron, fmt.Sprintf("/%s: %s", name, line))
			}
		}
	}
	return r, nil
}

// isWatch reports whether a process's command line (arguments separated
// by NUL bytes) is arpcheck watch.
func isWatch(cmdline []byte) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return len(args) >= 2 && path.Base(args[0]) == "arpcheck" && args[1] == "watch"
}

// cronRunsArpcheck returns the first active line of a crontab that runs
// arpcheck verify or repair.
func cronRunsArpcheck(b []byte) (string, bool) {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		for i, w := range f {
			if path.Base(w) == "arpcheck" && i+1 < len(f) && (f[i+1] == "verify" || f[i+1] == "repair") {
				return line, true
			}
		}
	}
	return "", false
}
