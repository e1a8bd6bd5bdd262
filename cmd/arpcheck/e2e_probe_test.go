package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// probe against real kernels: replies with MAC and RTT, duplicates,
// unicast to a MAC, silence, and the statuses 0, 1 and 3.
func TestE2EProbe(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	host := func(n int) string { return netns.HostMAC(n).String() }
	tests := []struct {
		name   string
		args   []string
		status int
		stdout []string // regular expressions, each matching a line
		stderr string   // substring
		quiet  bool     // want nothing on stdout
	}{
		{name: "broadcast", args: []string{"-c", "2", "--interval", "50ms", okIP.String()}, stdout: []string{
			`^ARPING 198\.18\.0\.2 from 198\.18\.0\.1 lan0 \(broadcast\)$`,
			`^Unicast reply from 198\.18\.0\.2 \[` + host(1) + `\]  [0-9.]+ms  seq=1$`,
			`^Unicast reply from 198\.18\.0\.2 \[` + host(1) + `\]  [0-9.]+ms  seq=2$`,
			`^--- 198\.18\.0\.2 statistics ---$`,
			`^2 requests sent, 2 answered \(0% loss\), 2 replies$`,
			`^rtt min/avg/max = [0-9.]+/[0-9.]+/[0-9.]+ ms$`}},
		{name: "flags after the address", args: []string{okIP.String(), "-c", "1"}, stdout: []string{
			`^1 request sent, 1 answered \(0% loss\), 1 reply$`}},
		{name: "two owners", args: []string{"-c", "1", "--timeout", "1s", conflictIP.String()}, stdout: []string{
			`^Unicast reply from 198\.18\.0\.5 \[02:00:00:00:00:0[34]\]  [0-9.]+ms  seq=1$`,
			`^Unicast reply from 198\.18\.0\.5 \[02:00:00:00:00:0[34]\]  [0-9.]+ms  seq=1 \(DUP: 2\) \[another MAC claims 198\.18\.0\.5\]$`,
			`^1 request sent, 1 answered \(0% loss\), 2 replies, 1 duplicate$`,
			`^2 MACs claim 198\.18\.0\.5: 02:00:00:00:00:0[34] \(1\), 02:00:00:00:00:0[34] \(1\)$`}},
		{name: "unicast to the owner", args: []string{"-c", "1", "--mac", host(2), staleIP.String()}, stdout: []string{
			`^ARPING 198\.18\.0\.3 from 198\.18\.0\.1 lan0 \(unicast to ` + host(2) + `\)$`,
			`^Unicast reply from 198\.18\.0\.3 \[` + host(2) + `\]`}},
		{name: "unicast to a MAC nobody has", args: []string{"-c", "1", "--timeout", "200ms", "--mac", wrongMAC.String(), staleIP.String()},
			status: 1, stdout: []string{`^1 request sent, 0 answered \(100% loss\), 0 replies$`}},
		{name: "nobody there", args: []string{"-c", "2", "--interval", "10ms", "--timeout", "200ms", deadIP.String()},
			status: 1, stdout: []string{`^2 requests sent, 0 answered \(100% loss\), 0 replies$`}},
		{name: "RFC 5227 probe", args: []string{"-c", "1", "-s", "0.0.0.0", okIP.String()}, stdout: []string{
			`^ARPING 198\.18\.0\.2 from 0\.0\.0\.0 lan0 \(broadcast\)$`, `^1 request sent, 1 answered`}},
		{name: "quiet", args: []string{"-q", "-c", "1", okIP.String()}, quiet: true},
		{name: "quiet and silent", args: []string{"-q", "-c", "1", "--timeout", "100ms", deadIP.String()}, status: 1, quiet: true},
		{name: "not on a connected subnet", args: []string{behindGWIP.String()}, status: 3,
			stderr: "not on a directly connected subnet"},
		{name: "asked on an interface anyway", args: []string{"-c", "1", "--timeout", "100ms", "-i", "lan0", behindGWIP.String()}, status: 1,
			stdout: []string{`^ARPING 198\.19\.0\.9 from 198\.18\.0\.1 lan0 \(broadcast\)$`}},
		{name: "unknown interface", args: []string{"-i", "nope0", okIP.String()}, status: 3, stderr: "unknown interface"},
		{name: "asked on an interface without ARP", args: []string{"-i", "lo", okIP.String()}, status: 3,
			stderr: "probe on lo: not an Ethernet interface that uses ARP"},
		{name: "the advice names only interfaces that use ARP", args: []string{behindGWIP.String()}, status: 3,
			stderr: "(name an interface that uses ARP to ask on it anyway: lan0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := arpcheck(t, l.Prober, args(append([]string{"probe"}, tt.args...)...))
			if o.status != tt.status || !strings.Contains(o.stderr, tt.stderr) {
				t.Errorf("want exit %d and stderr containing %q\n%s", tt.status, tt.stderr, o)
			}
			if tt.quiet && o.stdout != "" {
				t.Errorf("quiet: want no output\n%s", o)
			}
			for _, re := range tt.stdout {
				if !regexp.MustCompile(`(?m)` + re).MatchString(o.stdout) {
					t.Errorf("no line matches %s\n%s", re, o)
				}
			}
		})
	}
}
