package main

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// Capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// Without privileges arpcheck says which capability is missing and how
// to grant it. The runs are as nobody, with no capability or only
// CAP_NET_RAW (ambient, as a systemd unit or setcap would give it).
func TestE2EPrivileges(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	hint := "setcap cap_net_raw,cap_net_admin+ep $(command -v arpcheck)"
	tests := []struct {
		name    string
		args    []string
		ambient []uintptr
		status  int
		stderr  []string // substrings
		stdout  string   // substring
	}{
		{name: "verify without capabilities", args: []string{"verify", okIP.String()},
			status: 3, stderr: []string{"CAP_NET_RAW", "operation not permitted", "probing needs CAP_NET_RAW", hint}},
		{name: "repair without capabilities", args: []string{"repair", staleIP.String()},
			status: 3, stderr: []string{"probing needs CAP_NET_RAW", hint}},
		{name: "probe without capabilities", args: []string{"probe", "-c", "1", okIP.String()},
			status: 3, stderr: []string{"probing needs CAP_NET_RAW", hint}},
		{name: "nagios without capabilities", args: []string{"verify", "--format", "nagios", okIP.String()},
			status: 3, stderr: []string{"CAP_NET_RAW"}, stdout: "operation not permitted; probing needs CAP_NET_RAW; run as root"},
		{name: "verify with CAP_NET_RAW", args: []string{"verify", okIP.String(), staleIP.String()},
			ambient: []uintptr{capNetRaw}, status: 2, stdout: "stale"},
		{name: "probe with CAP_NET_RAW", args: []string{"probe", "-c", "1", okIP.String()},
			ambient: []uintptr{capNetRaw}, status: 0, stdout: "1 answered"},
		{name: "repair with CAP_NET_RAW only", args: []string{"repair", "--include-permanent", okIP.String(), staleIP.String()},
			ambient: []uintptr{capNetRaw}, status: 3,
			stderr: []string{"repair needs CAP_NET_ADMIN", hint}, stdout: "write failed"},
		{name: "dry run with CAP_NET_RAW only", args: []string{"repair", "--dry-run", "--include-permanent", staleIP.String()},
			ambient: []uintptr{capNetRaw}, status: 2, stdout: "would-replace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := l.table()
			o := arpcheck(t, l.Prober, invocation{args: tt.args, nobody: true, ambient: tt.ambient})
			if o.status != tt.status || !strings.Contains(o.stdout, tt.stdout) {
				t.Errorf("want exit %d and %q on stdout\n%s", tt.status, tt.stdout, o)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(o.stderr, s) {
					t.Errorf("stderr does not say %q\n%s", s, o)
				}
			}
			if after := l.table(); after[staleIP] != before[staleIP] {
				t.Errorf("%s changed from %v to %v without CAP_NET_ADMIN", staleIP, before[staleIP], after[staleIP])
			}
		})
	}
}
