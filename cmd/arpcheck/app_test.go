package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp(&env{})
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "flags first already", in: []string{"arpcheck", "verify", "-q", "198.18.0.2"},
			want: []string{"arpcheck", "verify", "-q", "--", "198.18.0.2"}},
		{name: "flags after peers", in: []string{"arpcheck", "verify", "198.18.0.2", "--format", "json", "198.18.0.3", "-q"},
			want: []string{"arpcheck", "verify", "--format", "json", "-q", "--", "198.18.0.2", "198.18.0.3"}},
		{name: "value after =", in: []string{"arpcheck", "repair", "198.18.0.2", "--timeout=1s", "--dry-run"},
			want: []string{"arpcheck", "repair", "--timeout=1s", "--dry-run", "--", "198.18.0.2"}},
		{name: "short flag with value", in: []string{"arpcheck", "probe", "198.18.0.2", "-c", "5", "-i", "lan0"},
			want: []string{"arpcheck", "probe", "-c", "5", "-i", "lan0", "--", "198.18.0.2"}},
		{name: "stdin as the value of --peers", in: []string{"arpcheck", "verify", "--peers", "-", "198.18.0.2"},
			want: []string{"arpcheck", "verify", "--peers", "-", "--", "198.18.0.2"}},
		{name: "unknown flags are kept as flags", in: []string{"arpcheck", "verify", "198.18.0.2", "--bogus"},
			want: []string{"arpcheck", "verify", "--bogus", "--", "198.18.0.2"}},
		{name: "-- ends the flags", in: []string{"arpcheck", "verify", "198.18.0.2", "--", "-q"},
			want: []string{"arpcheck", "verify", "--", "198.18.0.2", "-q"}},
		{name: "no arguments", in: []string{"arpcheck", "verify", "-q"}, want: []string{"arpcheck", "verify", "-q"}},
		{name: "not a command", in: []string{"arpcheck", "frob", "x", "-q"}, want: []string{"arpcheck", "frob", "x", "-q"}},
		{name: "completion is left alone", in: []string{"arpcheck", "verify", "198.18.0.2", "--generate-bash-completion"},
			want: []string{"arpcheck", "verify", "198.18.0.2", "--generate-bash-completion"}},
	}
	for _, tt := range tests {
		if got := flagsFirst(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("%s: flagsFirst(%q)\n = %q\nwant %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// runCLI runs the command line in this process, as main does.
func runCLI(t *testing.T, stdin string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	status = run(context.Background(), append([]string{"arpcheck"}, args...), e)
	return status, out.String(), errb.String()
}

// These runs all stop before anything is sent, so they need no privilege.
func TestRunUsageAndBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("peers.txt", "198.18.0.2\n# a comment\n\n198.18.1.300 web\n")
	tests := []struct {
		name   string
		stdin  string
		args   []string
		stderr string // substring
		stdout string // substring; "" means empty
	}{
		{name: "no command", args: nil, stdout: "USAGE:"},
		{name: "unknown command", args: []string{"frob"}, stderr: `unknown command "frob"`},
		{name: "unknown flag", args: []string{"verify", "--bogus"}, stderr: "flag provided but not defined: -bogus (see arpcheck verify --help)"},
		{name: "bad format", args: []string{"verify", "--format", "xml"}, stderr: `--format "xml": want one of text, json, prometheus, nagios`},
		{name: "zero timeout", args: []string{"verify", "--timeout", "0s"}, stderr: "--timeout must be positive"},
		{name: "bad duration", args: []string{"verify", "--timeout", "5"}, stderr: "invalid value"},
		{name: "negative deadline", args: []string{"repair", "--deadline", "-1s"}, stderr: "--deadline must not be negative"},
		{name: "bad broadcast policy", args: []string{"verify", "--broadcast", "sometimes"}, stderr: `--broadcast "sometimes"`},
		{name: "bad address", args: []string{"verify", "198.18.0.2", "198.18.1.300"},
			stderr: `arpcheck: argument 2: "198.18.1.300": not an IPv4 address or prefix`},
		{name: "IPv6 address", args: []string{"verify", "2001:db8::1"}, stderr: "IPv6 address"},
		{name: "prefix too large", args: []string{"repair", "198.0.0.0/8"}, stderr: "at most 65536"},
		{name: "flag after a bad peer", args: []string{"verify", "198.18.1.300", "-q"}, stderr: `"198.18.1.300"`},
		{name: "bad line in a file", args: []string{"verify", "--peers", bad},
			stderr: "arpcheck: " + bad + `:4: "198.18.1.300": not an IPv4 address or prefix`},
		{name: "bad line on stdin", stdin: "198.18.0.2\n\x00\xff\n", args: []string{"verify", "--peers", "-"},
			stderr: `arpcheck: stdin:2: "\x00\xff": not an IPv4 address or prefix`},
		{name: "missing file", args: []string{"verify", "--peers", filepath.Join(dir, "nope")}, stderr: "no such file"},
		{name: "nagios says UNKNOWN on stdout", args: []string{"verify", "--format", "nagios", "198.18.1.300"},
			stderr: `"198.18.1.300"`, stdout: `ARPCHECK UNKNOWN - argument 1: "198.18.1.300": not an IPv4 address or prefix` + "\n"},
		{name: "probe without IP", args: []string{"probe"}, stderr: "want one IP to probe, got 0 arguments"},
		{name: "probe two IPs", args: []string{"probe", "198.18.0.2", "198.18.0.3"}, stderr: "got 2 arguments"},
		{name: "probe IPv6", args: []string{"probe", "2001:db8::1"}, stderr: `"2001:db8::1": not an IPv4 address`},
		{name: "probe multicast MAC", args: []string{"probe", "--mac", "01:00:5e:00:00:01", "198.18.0.2"}, stderr: "not a unicast Ethernet address"},
		{name: "probe bad source", args: []string{"probe", "-s", "x", "198.18.0.2"}, stderr: `--source "x"`},
		{name: "probe zero interval", args: []string{"probe", "--interval", "0s", "198.18.0.2"}, stderr: "--interval must be positive"},
		{name: "completion for another shell", args: []string{"completion", "zsh"}, stderr: "only bash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := runCLI(t, tt.stdin, tt.args...)
			if status != exitUnknown {
				t.Errorf("status %d; want 3", status)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q; want it to contain %q", stderr, tt.stderr)
			}
			if tt.stdout == "" && stdout != "" || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q; want %q", stdout, tt.stdout)
			}
		})
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("ARPCHECK_FORMAT", "xml")
	status, _, stderr := runCLI(t, "", "verify")
	if status != exitUnknown || !strings.Contains(stderr, `--format "xml"`) {
		t.Errorf("ARPCHECK_FORMAT=xml: status %d, stderr %q; want 3 and a complaint about --format", status, stderr)
	}
	t.Setenv("ARPCHECK_FORMAT", "json")
	t.Setenv("ARPCHECK_PEERS", filepath.Join(t.TempDir(), "empty"))
	if err := os.WriteFile(os.Getenv("ARPCHECK_PEERS"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr := runCLI(t, "", "verify")
	if status != exitOK || !strings.HasPrefix(stdout, `{"version":1,"command":"verify"`) {
		t.Errorf("ARPCHECK_FORMAT=json and ARPCHECK_PEERS=empty: status %d, stdout %q, stderr %q; want 0 and a JSON report", status, stdout, stderr)
	}
}

// An empty peer list checks nothing, rather than the whole table.
func TestRunEmptyList(t *testing.T) {
	status, stdout, stderr := runCLI(t, "# nothing\n\n", "verify", "--peers", "-")
	if status != exitOK || !strings.HasPrefix(stdout, "0 peers checked in") || stderr != "" {
		t.Errorf("status %d, stdout %q, stderr %q; want 0, 0 peers checked", status, stdout, stderr)
	}
	status, stdout, _ = runCLI(t, "", "verify", "-q", "--peers", "-")
	if status != exitOK || stdout != "" {
		t.Errorf("quiet: status %d, stdout %q; want 0 and nothing", status, stdout)
	}
}

func TestRunLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arpcheck.lock")
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr := runCLI(t, "", "repair", "-q", "--lock", path, "198.18.0.2")
	unlock()
	if status != exitUnknown || !strings.Contains(stderr, "another run holds the lock "+path) || stdout != "" {
		t.Errorf("status %d, stdout %q, stderr %q; want 3 and a message that another run holds the lock", status, stdout, stderr)
	}
	// Released, it can be taken again: a run with an empty list takes it.
	status, _, stderr = runCLI(t, "", "repair", "-q", "--lock", path, "--peers", "-")
	if status != exitOK {
		t.Errorf("after unlock: status %d, stderr %q; want 0", status, stderr)
	}
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(path)
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	if _, err := lock(path); err == nil || !strings.Contains(err.Error(), "another run holds the lock") {
		t.Errorf("second lock: %v; want errLockHeld", err)
	}
	unlock()
	unlock2, err := lock(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
	if b, _ := os.ReadFile(path); string(b) != "keep me\n" {
		t.Errorf("lock file holds %q; want its contents untouched", b)
	}
	if _, err := lock(filepath.Join(path, "sub")); err == nil {
		t.Error("lock under a regular file succeeded")
	}
}

// Completion itself is tested on the binary (e2e_test.go): urfave/cli
// reads os.Args to complete.
func TestRunVersionManCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"version"}, []string{"arpcheck " + versionString() + " ", "go1."}},
		{[]string{"man"}, []string{".TH arpcheck 8", "verify", "repair", "probe", "--include-permanent", "ARPCHECK_INTERFACE"}},
		{[]string{"completion", "bash"}, []string{"complete -o bashdefault -o default -F _arpcheck arpcheck", "--generate-bash-completion"}},
	}
	for _, tt := range tests {
		status, stdout, stderr := runCLI(t, "", tt.args...)
		if status != exitOK || stderr != "" {
			t.Errorf("%q: status %d, stderr %q; want 0 and nothing", tt.args, status, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%q: stdout does not contain %q:\n%s", tt.args, w, stdout)
			}
		}
	}
}

// flagValue reads a flag's value from a command line that did not
// parse, as the flag package would have read it.
func TestFlagValue(t *testing.T) {
	app := newApp(&env{})
	var verify *cli.Command
	for _, c := range app.Commands {
		if c.Name == "verify" {
			verify = c
		}
	}
	tests := []struct {
		name  string
		args  []string
		want  string
		found bool
	}{
		{"separate value", []string{"--format", "json", "--bogus"}, "json", true},
		{"after =", []string{"--bogus", "-format=nagios"}, "nagios", true},
		{"the last one counts", []string{"--format", "json", "--format", "text"}, "text", true},
		{"a value that looks like the flag", []string{"--peers", "--format", "--timeout", "x"}, "", false},
		{"after --", []string{"--", "--format", "json"}, "", false},
		{"not given", []string{"-q", "--bogus"}, "", false},
	}
	for _, tt := range tests {
		got, found := flagValue(verify, append([]string{"arpcheck", "verify"}, tt.args...), flagFormat)
		if got != tt.want || found != tt.found {
			t.Errorf("%s: flagValue(%q) = %q, %v; want %q, %v", tt.name, tt.args, got, found, tt.want, tt.found)
		}
	}
}
