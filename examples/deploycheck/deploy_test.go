package deploycheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/proctest"
)

// deployDir holds the files under test, as a user copies them.
const deployDir = "../deploy"

// installedBinary is where the deployment files expect arpcheck.
const installedBinary = "/usr/local/bin/arpcheck"

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deployCmd is one arpcheck command line found in a deployment file.
type deployCmd struct {
	file string   // relative to deployDir
	args []string // args[0] is the binary
}

func (c deployCmd) String() string { return c.file + ": " + strings.Join(c.args, " ") }

// nagiosMacro matches the $ARGn$ macros Nagios fills in from the service.
var nagiosMacro = regexp.MustCompile(`^\$ARG[0-9]+\$$`)

// commands returns every arpcheck command line of the deployment files,
// split into words. The files use no quoting, so that splitting at spaces
// is what cron's shell, systemd and Nagios all do with them; a quote or a
// shell metacharacter fails the test.
func commands(t *testing.T) []deployCmd {
	t.Helper()
	var cmds []deployCmd
	add := func(file, line string) {
		var args []string
		for _, f := range strings.Fields(line) {
			if nagiosMacro.MatchString(f) {
				continue // empty unless the service passes arguments
			}
			if strings.ContainsAny(f, `"'\$;|&<>(){}*?~`+"`") {
				t.Errorf("%s: %q: quoting or shell syntax; keep command lines plain", file, f)
			}
			args = append(args, f)
		}
		cmds = append(cmds, deployCmd{file: file, args: args})
	}

	jobs, err := parseCronD(read(t, "cron/arpcheck"))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		add("cron/arpcheck", j.Command)
	}
	for _, v := range unitFile(t, "systemd/arpcheck.service")["Service"]["ExecStart"] {
		add("systemd/arpcheck.service", strings.TrimLeft(v, "-@:+!"))
	}
	for _, line := range strings.Split(read(t, "nagios/arpcheck.cfg"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "command_line" {
			add("nagios/arpcheck.cfg", strings.Join(f[1:], " "))
		}
	}
	if len(cmds) != 3 {
		t.Fatalf("found %d arpcheck command lines in the deployment files; want 3 (cron, systemd, nagios): %v", len(cmds), cmds)
	}
	for _, c := range cmds {
		if len(c.args) < 2 || c.args[0] != installedBinary {
			t.Errorf("%v: want %s and a command", c, installedBinary)
		}
	}
	return cmds
}

// unitFile parses a systemd unit file: section, key, values in order.
func unitFile(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	u := map[string]map[string][]string{}
	var sec string
	for i, line := range strings.Split(read(t, name), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			sec = line[1 : len(line)-1]
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section (continuation lines are not used here): %q", name, i+1, line)
			}
			u[sec][strings.TrimSpace(k)] = append(u[sec][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// arpcheck is the command the deploy files run, built for the tests.
var arpcheck proctest.Build

// cli builds the arpcheck command once per test binary and returns its path.
func cli(t *testing.T) string {
	t.Helper()
	return arpcheck.Path(t, "arpcheck", func(path string) error {
		return proctest.GoBuild(path, "github.com/arpcheck/arpcheck/cmd/arpcheck", false)
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	arpcheck.Remove()
	os.Exit(code)
}

// cliFlags returns the flags of an arpcheck command as its --help lists
// them, each with whether it takes a value.
func cliFlags(t *testing.T, command string) map[string]bool {
	t.Helper()
	out, err := exec.Command(cli(t), command, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("arpcheck %s --help: %v\n%s", command, err, out)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		s := strings.TrimSpace(line)
		if !strings.HasPrefix(s, "-") {
			continue
		}
		// "--lock value, -l value   what it does [$ARPCHECK_LOCK]"
		spec, _, _ := strings.Cut(s, "  ")
		for _, name := range strings.Split(spec, ", ") {
			name, arg, _ := strings.Cut(name, " ")
			flags[name] = arg != ""
		}
	}
	if len(flags) < 3 {
		t.Fatalf("arpcheck %s --help lists %d flags; the parser here does not understand it:\n%s", command, len(flags), out)
	}
	return flags
}

// Every flag the deployment files use exists for its command, and takes a
// value exactly where the files give one.
func TestDeployFlagsExist(t *testing.T) {
	for _, c := range commands(t) {
		known := cliFlags(t, c.args[1])
		for i := 2; i < len(c.args); i++ {
			a := c.args[i]
			if !strings.HasPrefix(a, "-") {
				continue // a peer
			}
			name, _, inline := strings.Cut(a, "=")
			takesValue, ok := known[name]
			switch {
			case !ok:
				t.Errorf("%v: arpcheck %s has no flag %s", c, c.args[1], name)
			case takesValue && !inline:
				if i+1 == len(c.args) || strings.HasPrefix(c.args[i+1], "-") {
					t.Errorf("%v: %s wants a value", c, name)
				}
				i++
			}
		}
	}
}

func TestCronFile(t *testing.T) {
	jobs, err := parseCronD(read(t, "cron/arpcheck"))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Fatalf("%d jobs; want 1", len(jobs))
	}
	j := jobs[0]
	if j.Time != "* * * * *" || j.User != "root" {
		t.Errorf("job runs %q as %q; want every minute as root", j.Time, j.User)
	}
	for _, want := range []string{" repair ", " -q", " --lock "} {
		if !strings.Contains(j.Command+" ", want) {
			t.Errorf("job %q lacks %q", j.Command, want)
		}
	}
	// cron ignores files in /etc/cron.d whose names hold a dot.
	if strings.Contains(path.Base("cron/arpcheck"), ".") {
		t.Error("cron file name has a dot")
	}
}

// systemd-analyze verify reads the units as systemd would. The binary
// named by ExecStart must exist, so a copy of the units points at the
// freshly built arpcheck.
func TestSystemdUnitsVerify(t *testing.T) {
	t.Run("units", func(t *testing.T) { testSystemdUnitsVerify(t, false) })
	t.Run("with the tracepoints drop-in", func(t *testing.T) { testSystemdUnitsVerify(t, true) })
}

func testSystemdUnitsVerify(t *testing.T, dropIn bool) {
	analyze := need(t, "systemd-analyze")
	dir := t.TempDir()
	units := []string{"arpcheck.service", "arpcheck.timer", "arpcheck-watch.service"}
	files := slices.Clone(units)
	if dropIn {
		if err := os.Mkdir(filepath.Join(dir, "arpcheck-watch.service.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		files = append(files, "arpcheck-watch.service.d/tracepoints.conf")
	}
	for _, name := range files {
		text := strings.ReplaceAll(read(t, "systemd/"+name), installedBinary, cli(t))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	// Unknown keys and bad values are warnings with exit status 0: any
	// word about our units is a failure. Lines about other units on the
	// machine are not ours to judge.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "arpcheck") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The hardening stays: systemd's own exposure score (0 best, 10
	// worst; the threshold is in tenths) must not get worse.
	for _, unit := range []string{"arpcheck.service", "arpcheck-watch.service"} {
		cmd = exec.Command(analyze, "security", "--offline=true", "--threshold=20", unit)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze security %s: exposure above 2.0 or error: %v\n%s", unit, err, tail(out, 5))
		}
	}
}

// The unit's parts agree with each other and with the sysusers and
// tmpfiles files: a mismatch only shows when the service first runs.
func TestSystemdUnitConsistent(t *testing.T) {
	u := unitFile(t, "systemd/arpcheck.service")
	svc := u["Service"]
	one := func(key string) string {
		t.Helper()
		if len(svc[key]) != 1 {
			t.Fatalf("[Service] %s set %d times; want once", key, len(svc[key]))
		}
		return svc[key][0]
	}
	caps := "CAP_NET_RAW CAP_NET_ADMIN"
	if got := one("CapabilityBoundingSet"); got != caps {
		t.Errorf("CapabilityBoundingSet=%s; want %s", got, caps)
	}
	if got := one("AmbientCapabilities"); got != caps {
		t.Errorf("AmbientCapabilities=%s; want %s", got, caps)
	}
	for key, want := range map[string]string{"Type": "oneshot", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"RestrictAddressFamilies": "AF_PACKET AF_NETLINK AF_UNIX"} {
		if got := one(key); got != want {
			t.Errorf("%s=%s; want %s", key, got, want)
		}
	}
	args := strings.Fields(one("ExecStart"))
	value := func(flag string) string {
		i := slices.Index(args, flag)
		if i < 0 || i+1 == len(args) {
			t.Fatalf("ExecStart has no %s value: %v", flag, args)
		}
		return args[i+1]
	}
	if got, want := path.Dir(value("--output")), one("ReadWritePaths"); got != want {
		t.Errorf("--output writes to %s, but ReadWritePaths=%s", got, want)
	}
	if got, want := path.Dir(value("--lock")), "/run/"+one("RuntimeDirectory"); got != want {
		t.Errorf("--lock is in %s, but RuntimeDirectory gives %s", got, want)
	}

	user := one("User")
	sysusers := strings.Fields(nonComment(read(t, "systemd/arpcheck.sysusers")))
	if len(sysusers) < 2 || sysusers[0] != "u" || sysusers[1] != user || one("Group") != user {
		t.Errorf("sysusers file creates %v; want user and group %s (User=%s Group=%s)", sysusers, user, user, one("Group"))
	}
	tmpfiles := strings.Fields(nonComment(read(t, "systemd/arpcheck.tmpfiles")))
	if len(tmpfiles) < 5 || tmpfiles[1] != one("ReadWritePaths") || tmpfiles[4] != user {
		t.Errorf("tmpfiles line %v; want the directory %s with group %s", tmpfiles, one("ReadWritePaths"), user)
	}
}

// systemd-sysusers and systemd-tmpfiles, run on an empty root, create the
// user and a textfile directory the user's group can write.
func TestSysusersTmpfiles(t *testing.T) {
	sysusers, tmpfiles := need(t, "systemd-sysusers"), need(t, "systemd-tmpfiles")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs := func(name string) string {
		p, err := filepath.Abs(filepath.Join(deployDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out, err := exec.Command(sysusers, "--root="+root, abs("systemd/arpcheck.sysusers")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	if out, err := exec.Command(tmpfiles, "--root="+root, "--create", abs("systemd/arpcheck.tmpfiles")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	group, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	var gid string
	for _, line := range strings.Split(string(group), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] == "arpcheck" {
			gid = f[2]
		}
	}
	if gid == "" {
		t.Fatalf("no group arpcheck in %s", group)
	}
	fi, err := os.Stat(filepath.Join(root, "var/lib/node_exporter/textfile_collector"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o070 != 0o070 || fi.Mode().Perm()&0o005 != 0o005 {
		t.Errorf("textfile directory mode %v; want it writable by the group and readable by all", fi.Mode())
	}
	if got := fmt.Sprint(statGID(fi)); got != gid {
		t.Errorf("textfile directory group %s; want arpcheck (%s)", got, gid)
	}
}

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI is true: .ci/run installs it)", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

func nonComment(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return bytes.Join(lines[max(0, len(lines)-n):], []byte("\n"))
}

// runArgs runs args (args[0] replaced by the built arpcheck) through do,
// such as a namespace's Do: the process is forked from a thread inside the
// namespace and starts in it. It returns the exit status and output.
func runArgs(ctx context.Context, t *testing.T, do func(func() error) error, args []string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := do(func() error {
		cmd := exec.CommandContext(ctx, cli(t), args[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		return cmd.Run()
	})
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		status = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return status, out.String(), errOut.String()
}

// withTimeout returns a context for one command run.
func withTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// statGID returns the group of a file.
func statGID(fi os.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Gid }
