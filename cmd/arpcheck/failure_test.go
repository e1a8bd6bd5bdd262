package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// jsonFailure is the JSON report of a run that exits 3, as a consumer
// reads it.
type jsonFailure struct {
	Version  int            `json:"version"`
	Command  string         `json:"command"`
	Peers    []any          `json:"peers"`
	Summary  map[string]int `json:"summary"`
	ExitCode int            `json:"exit_code"`
	Error    *failure       `json:"error"`
}

// parseFailure parses stdout as exactly one JSON object.
func parseFailure(t *testing.T, stdout string) *jsonFailure {
	t.Helper()
	var r jsonFailure
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%q", err, stdout)
	}
	if dec.More() || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("stdout is more than one JSON object on one line:\n%q", stdout)
	}
	return &r
}

// A run that exits 3 before checking anything still prints one JSON
// object with --format json: the contract's fields, no peers, exit_code
// 3 and an error naming the cause and, for bad input, where it is.
func TestRunJSONOnFailure(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "peers.txt")
	if err := os.WriteFile(bad, []byte("198.18.0.2\n# a comment\n\n198.18.1.300 web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "arpcheck.lock")
	unlock, err := lock(held)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	missing := filepath.Join(dir, "nope")
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  failure // Message: a substring
	}{
		{name: "bad line in a file", args: []string{"verify", "--format", "json", "--peers", bad},
			want: failure{Cause: causeBadInput, File: bad, Line: 4, Message: bad + `:4: "198.18.1.300": not an IPv4 address or prefix`}},
		{name: "bad line on stdin", stdin: "198.18.0.2\nx\n", args: []string{"repair", "--format", "json", "--peers", "-"},
			want: failure{Cause: causeBadInput, File: "stdin", Line: 2, Message: `stdin:2: "x"`}},
		{name: "bad argument", args: []string{"verify", "--format=json", "198.18.0.2", "198.18.1.300"},
			want: failure{Cause: causeBadInput, Argument: 2, Message: `argument 2: "198.18.1.300": not an IPv4 address or prefix`}},
		{name: "missing peer file", args: []string{"verify", "--format", "json", "--peers", missing},
			want: failure{Cause: causeBadInput, File: missing, Message: "no such file or directory"}},
		{name: "lock held", args: []string{"repair", "--format", "json", "--lock", held, "198.18.0.2"},
			want: failure{Cause: causeLock, Message: "another run holds the lock " + held}},
		{name: "flag value out of range", args: []string{"verify", "--format", "json", "--timeout", "0s"},
			want: failure{Cause: causeUsage, Message: "--timeout must be positive (see arpcheck verify --help)"}},
		{name: "flag value that does not parse", args: []string{"verify", "--format", "json", "--timeout", "5"},
			want: failure{Cause: causeUsage, Message: "invalid value"}},
		{name: "unknown flag after the format", args: []string{"repair", "--format", "json", "--bogus"},
			want: failure{Cause: causeUsage, Message: "flag provided but not defined: -bogus"}},
		{name: "unknown flag before the format", args: []string{"repair", "--bogus", "--format", "json"},
			want: failure{Cause: causeUsage, Message: "flag provided but not defined: -bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := runCLI(t, tt.stdin, tt.args...)
			if status != exitUnknown || !strings.Contains(stderr, "arpcheck: ") {
				t.Errorf("status %d, stderr %q; want 3 and the error on stderr", status, stderr)
			}
			r := parseFailure(t, stdout)
			if r.Version != 1 || r.Command != tt.args[0] || r.ExitCode != 3 || r.Peers == nil || len(r.Peers) != 0 ||
				r.Summary["checked"] != 0 {
				t.Errorf("version %d, command %q, exit_code %d, peers %v, summary %v; want 1, %s, 3, [], 0 checked\n%s",
					r.Version, r.Command, r.ExitCode, r.Peers, r.Summary, tt.args[0], stdout)
			}
			if r.Error == nil {
				t.Fatalf("no error object:\n%s", stdout)
			}
			got := *r.Error
			if !strings.Contains(got.Message, tt.want.Message) || strings.Contains(got.Message, "\n") {
				t.Errorf("error message %q; want one line containing %q", got.Message, tt.want.Message)
			}
			got.Message = tt.want.Message
			if got != tt.want {
				t.Errorf("error %+v\nwant  %+v", got, tt.want)
			}
		})
	}
}

// The format may come from the environment, as every flag's value may.
func TestRunJSONOnFailureEnvironment(t *testing.T) {
	t.Setenv("ARPCHECK_FORMAT", "json")
	for _, args := range [][]string{{"verify", "--bogus"}, {"repair", "--timeout", "0s"}} {
		status, stdout, _ := runCLI(t, "", args...)
		if r := parseFailure(t, stdout); status != exitUnknown || r.Error == nil || r.Error.Cause != causeUsage {
			t.Errorf("ARPCHECK_FORMAT=json %q: status %d, stdout %q; want 3 and a usage error in JSON", args, status, stdout)
		}
	}
	status, stdout, _ := runCLI(t, "", "verify", "--format", "text", "--bogus")
	if status != exitUnknown || stdout != "" {
		t.Errorf("--format text over ARPCHECK_FORMAT=json: status %d, stdout %q; want 3 and nothing", status, stdout)
	}
}

// Other formats keep their behaviour on a usage error; text prints
// nothing on standard output.
func TestRunUsageErrorFormats(t *testing.T) {
	tests := []struct {
		format, want string // want: stdout's prefix; "" for nothing
	}{
		{"text", ""},
		{"nagios", "ARPCHECK UNKNOWN - --timeout must be positive"},
		{"prometheus", "# HELP "},
	}
	for _, tt := range tests {
		status, stdout, _ := runCLI(t, "", "verify", "--format", tt.format, "--timeout", "0s")
		if status != exitUnknown || (tt.want == "") != (stdout == "") || !strings.HasPrefix(stdout, tt.want) {
			t.Errorf("--format %s: status %d, stdout %q; want 3 and %q", tt.format, status, stdout, tt.want)
		}
	}
}

func TestDescribeFailure(t *testing.T) {
	capErr := &arpprobe.CapabilityError{Capability: "CAP_NET_RAW",
		Err: fmt.Errorf("arpprobe: listen on lan0: raw sockets need CAP_NET_RAW: %w", syscall.EPERM)}
	tests := []struct {
		name string
		err  error
		want failure
	}{
		{"missing capability, with the hint", privilegeError(capErr), failure{Cause: causePrivilege, Capability: "CAP_NET_RAW",
			Message: "listen on lan0: raw sockets need CAP_NET_RAW: operation not permitted; probing needs CAP_NET_RAW; " + setcapHint}},
		{"permission denied", fmt.Errorf("arpprobe: open: %w", os.ErrPermission), failure{Cause: causePrivilege, Message: "open: permission denied"}},
		{"unknown interface", fmt.Errorf("arpprobe: interface %q: %w", "nosuch0", arpprobe.ErrUnknownInterface),
			failure{Cause: causeInterface, Message: `interface "nosuch0": unknown interface`}},
		{"peer file not readable", &inputErr{file: "p.txt", err: &os.PathError{Op: "open", Path: "p.txt", Err: syscall.EACCES}},
			failure{Cause: causeBadInput, File: "p.txt", Message: "open p.txt: permission denied"}},
		{"interrupted", fmt.Errorf("%w; 3 of 7 peers not checked", errInterrupted),
			failure{Cause: causeInterrupted, Message: "interrupted; 3 of 7 peers not checked"}},
		{"unknown peers and a failed repair: the privilege first",
			errors.Join(privilegeError(&arpprobe.CapabilityError{Capability: "CAP_NET_ADMIN", Err: syscall.EPERM}), &uncheckedErr{1, 3, ""}),
			failure{Cause: causePrivilege, Capability: "CAP_NET_ADMIN",
				Message: "operation not permitted; repair needs CAP_NET_ADMIN; " + setcapHint + "; 1 of 3 peers could not be checked"}},
		{"something else", errors.New("arpprobe: neighbour table: boom"), failure{Cause: causeOther, Message: "neighbour table: boom"}},
	}
	for _, tt := range tests {
		if got := describeFailure(tt.err); !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, *got, tt.want)
		}
	}
}
