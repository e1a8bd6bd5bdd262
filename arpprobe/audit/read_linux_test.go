package audit_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/audit"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// auditNS returns a namespace with a veth pair, eth0 (198.18.0.1/24) and
// peer0, both up, gone when the test ends.
func auditNS(t *testing.T) *netns.NS {
	return netns.NewPairT(t, "eth0", "peer0", netip.MustParsePrefix("198.18.0.1/24"))
}

// findings reads ns as arpcheck doctor does, and checks it. The files
// searched for how arpcheck runs are empty: that is host-wide, and
// TestReadRuns tests it.
func findings(t *testing.T, ns *netns.NS) []audit.Finding {
	t.Helper()
	k, err := arpprobe.OpenKernelAt(ns.NsHandle())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h, err := audit.Read(t.Context(), audit.Source{Sysctls: ns, Table: k, Files: fstest.MapFS{}})
	if err != nil {
		t.Fatal(err)
	}
	return audit.Check(h)
}

func brief(f audit.Finding) string {
	return fmt.Sprintf("%s %s %s=%s", f.Severity, f.Interface, f.Setting, f.Value)
}

// A namespace as the kernel makes it has nothing that needs attention,
// but for what is host-wide: nothing runs arpcheck (the files searched
// are empty), and the gc_thresh sysctls are not there to see.
func TestReadCleanNamespace(t *testing.T) {
	var got []string
	for _, f := range findings(t, auditNS(t)) {
		got = append(got, brief(f))
	}
	if len(got) >= 2 {
		slices.Sort(got[:2]) // the interfaces come in the kernel's order
	}
	want := []string{
		"info eth0 net.ipv4.conf.eth0.arp_notify=0",
		"info peer0 net.ipv4.conf.peer0.arp_notify=0",
		"info  net.ipv4.neigh.default.gc_thresh1-3=not visible (0 entries here)",
		"warning  arpcheck=no watch process, systemd unit or cron job",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings in a clean namespace:\ngot  %q\nwant %q", got, want)
	}
}

// Each setting and entry that makes doctor speak, set in a namespace of
// its own, is found, on the interface it was set on.
func TestReadFindsEachSetting(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x01}
	sysctl := func(path, value string) func(*testing.T, *netns.NS) {
		return func(t *testing.T, ns *netns.NS) {
			t.Helper()
			if err := ns.Sysctl(path, value); err != nil {
				t.Fatal(err)
			}
		}
	}
	neigh := func(ip string, state, flags int) func(*testing.T, *netns.NS) {
		return func(t *testing.T, ns *netns.NS) {
			t.Helper()
			if err := ns.AddNeigh("eth0", netip.MustParseAddr(ip), mac, state, flags); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		set   []func(*testing.T, *netns.NS)
		want  string // the finding, as brief writes it
		words string // in its meaning
	}{
		{name: "base_reachable_time_ms", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/neigh/eth0/base_reachable_time_ms", "90000")},
			want: "warning eth0 net.ipv4.neigh.eth0.base_reachable_time_ms=90000", words: "heals in 53–143 s"},
		{name: "delay_first_probe_time", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/neigh/eth0/delay_first_probe_time", "20")},
			want: "warning eth0 net.ipv4.neigh.eth0.delay_first_probe_time=20", words: "heals in about 23 s"},
		{name: "locktime", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/neigh/eth0/locktime", "300")},
			want: "warning eth0 net.ipv4.neigh.eth0.locktime=300", words: "ignored for 3 s"},
		{name: "gc_stale_time", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/neigh/eth0/gc_stale_time", "600")},
			want: "info eth0 net.ipv4.neigh.eth0.gc_stale_time=600", words: "after 600 s unused"},
		{name: "drop_gratuitous_arp on all", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/conf/all/drop_gratuitous_arp", "1")},
			want: "warning eth0 net.ipv4.conf.all.drop_gratuitous_arp=1", words: "is dropped"},
		{name: "drop_gratuitous_arp on eth0", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/conf/eth0/drop_gratuitous_arp", "1")},
			want: "warning eth0 net.ipv4.conf.eth0.drop_gratuitous_arp=1", words: "is dropped"},
		{name: "proxy_arp with proxy_delay", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/conf/eth0/proxy_arp", "1"),
			sysctl("net/ipv4/neigh/eth0/proxy_delay", "20")},
			want: "warning eth0 net.ipv4.conf.eth0.proxy_arp=1", words: "0–0.2 s (proxy_delay 20)"},
		{name: "arp_accept", set: []func(*testing.T, *netns.NS){sysctl("net/ipv4/conf/eth0/arp_accept", "1")},
			want: "info eth0 net.ipv4.conf.eth0.arp_accept=1", words: "unsolicited ARP creates new entries"},
		{name: "PERMANENT entry", set: []func(*testing.T, *netns.NS){neigh("198.18.0.7", netlink.NUD_PERMANENT, 0)},
			want: "warning eth0 PERMANENT entries=1: 198.18.0.7", words: "never heals"},
		{name: "extern_learn entry", set: []func(*testing.T, *netns.NS){neigh("198.18.0.8", netlink.NUD_STALE, netlink.NTF_EXT_LEARNED)},
			want: "info eth0 extern_learn entries=1: 198.18.0.8", words: "controller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := auditNS(t)
			for _, set := range tt.set {
				set(t, ns)
			}
			var got []string
			found := false
			for _, f := range findings(t, ns) {
				got = append(got, brief(f))
				if brief(f) == tt.want {
					found = true
					if !strings.Contains(f.Meaning, tt.words) {
						t.Errorf("%s: meaning %q, want one with %q", tt.want, f.Meaning, tt.words)
					}
				}
				if f.Interface == "peer0" && f.Severity != audit.Info && !strings.Contains(f.Setting, ".all.") {
					t.Errorf("peer0, which was not changed: %s", brief(f))
				}
			}
			if !found {
				t.Errorf("no finding %q in\n%s", tt.want, strings.Join(got, "\n"))
			}
		})
	}
}
