package main

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/vishvananda/netlink"
)

// The topologies of issue 11 that are not the plain LAN: a peer means
// every entry the kernel holds for its address on an interface that uses
// ARP (the rule in the package documentation), the same named or in
// whole-table mode.

// secondIface is the prober's second interface on the LAN's subnet.
const secondIface = "lan1"

// secondIP is its address, on the same /24 as lanPrefix.
var secondIP = netip.MustParsePrefix("198.18.0.10/24")

// addSecondNIC gives the lab's prober a second interface on the same
// switch and subnet, as multi-NIC cloud instances have (eth0 and eth1 on
// one subnet), with the kernel's locktime raised on both, so that only
// arpcheck changes their entries.
func addSecondNIC(t *testing.T, l *lab) {
	t.Helper()
	p, sw := l.Prober, l.Switch
	steps := []func() error{
		func() error { return netns.Veth(p, secondIface, sw, "p1") },
		func() error { return sw.SetMaster("p1", netns.SwitchBridge) },
		func() error { return sw.SetUp("p1") },
		func() error { return p.SetMAC(secondIface, netns.HostMAC(50)) },
		func() error { return p.AddAddr(secondIface, secondIP) },
		func() error { return p.SetUp(secondIface) },
		func() error { return sw.WaitUp(t.Context(), "p1") },
		func() error { return p.WaitUp(t.Context(), secondIface) },
	}
	for _, iface := range []string{netns.LANIface, secondIface} {
		steps = append(steps, func() error { return p.Sysctl("net/ipv4/neigh/"+iface+"/locktime", "100000") })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("second interface: %v", err)
		}
	}
}

// objects returns the report's peer objects for ip, as "interface
// verdict action".
func objects(r *jsonOut, ip netip.Addr) []string {
	var out []string
	for _, p := range r.Peers {
		if p.IP == ip.String() {
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", p.Interface, p.Verdict, p.Action)))
		}
	}
	slices.Sort(out)
	return out
}

// Two interfaces on one subnet (issue 11, case 1): the second caches a
// wrong MAC for a peer the first caches right. Named, the peer is checked
// on both, one object each, as the whole table does; repair corrects the
// second and leaves the first.
func TestE2ETwoInterfacesOneSubnet(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	addSecondNIC(t, l)
	if err := l.Prober.AddNeigh(secondIface, okIP, wrongMAC, netlink.NUD_STALE, 0); err != nil {
		t.Fatal(err)
	}
	first := l.entriesOn(netns.LANIface)

	for _, named := range []bool{true, false} {
		a := []string{"verify", "--format", "json"}
		if named {
			a = append(a, okIP.String())
		}
		o := arpcheck(t, l.Prober, args(a...))
		r := parseJSON(t, o)
		want := []string{"lan0 ok none", "lan1 stale none"}
		if got := objects(r, okIP); !slices.Equal(got, want) || o.status != exitCritical {
			t.Errorf("verify (named %v): %s is %q, exit %d; want %q, exit %d\n%s", named, okIP, got, o.status, want, exitCritical, o)
		}
	}

	o := arpcheck(t, l.Prober, args("repair", "--format", "json", okIP.String()))
	r := parseJSON(t, o)
	got := objects(r, okIP)
	if o.status != exitOK || len(got) != 2 || got[0] != "lan0 ok none" ||
		(got[1] != "lan1 stale replaced" && got[1] != "lan1 stale healed") {
		t.Errorf("repair %s: %q, exit %d; want lan0 ok, lan1 stale replaced, exit 0\n%s", okIP, got, o.status, o)
	}
	if e := l.entriesOn(secondIface)[okIP]; e.MAC != netns.HostMAC(1).String() {
		t.Errorf("lan1's entry for %s is %v after repair; want %s", okIP, e, netns.HostMAC(1))
	}
	// The kernel moves states by itself (a reply confirms an entry); a
	// MAC it was not asked to change must stay.
	if after := l.entriesOn(netns.LANIface); !maps.EqualFunc(after, first, func(a, b entry) bool { return a.MAC == b.MAC }) {
		t.Errorf("lan0's entries changed:\n%v\nwas\n%v", after, first)
	}
}

// moveToBridge enslaves the prober's lan0 to a bridge br0 of its own and
// moves lan0's address to br0, as a host does that bridges its NIC for
// virtual machines.
func moveToBridge(t *testing.T, l *lab) {
	t.Helper()
	p := l.Prober
	steps := []func() error{
		func() error { return p.Bridge("br0") },
		func() error { return p.SetMAC("br0", netns.HostMAC(0)) },
		func() error { return p.SetMaster(netns.LANIface, "br0") },
		func() error {
			link, err := p.Handle().LinkByName(netns.LANIface)
			if err != nil {
				return err
			}
			a, err := netlink.ParseAddr(lanPrefix.String())
			if err != nil {
				return err
			}
			return p.Handle().AddrDel(link, a)
		},
		func() error { return p.AddAddr("br0", lanPrefix) },
		func() error { return p.SetUp("br0") },
		func() error { return p.WaitUp(t.Context(), "br0") },
		func() error { return p.Sysctl("net/ipv4/neigh/br0/locktime", "100000") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("bridge: %v", err)
		}
	}
}

// An entry on a bridge port (issue 11, case 4): lan0 is a port of br0,
// which holds the address. The entry lan0 keeps for a live host is probed
// through br0 and is ok, not dead, and --delete-dead leaves it; the one
// for a MAC nobody has is dead and deleted.
func TestE2EBridgePortEntry(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	moveToBridge(t, l)
	l.seed(okIP, netns.HostMAC(1), netlink.NUD_STALE)
	l.seed(deadIP, deadMAC, netlink.NUD_STALE)

	o := arpcheck(t, l.Prober, args("repair", "--format", "json", "--delete-dead"))
	r := parseJSON(t, o)
	if got, want := objects(r, okIP), []string{"lan0 ok none"}; !slices.Equal(got, want) {
		t.Errorf("%s on the port: %q; want %q\n%s", okIP, got, want, o)
	}
	if got, want := objects(r, deadIP), []string{"lan0 dead deleted"}; !slices.Equal(got, want) {
		t.Errorf("%s on the port: %q; want %q\n%s", deadIP, got, want, o)
	}
	entries := l.entriesOn(netns.LANIface)
	if e, ok := entries[okIP]; !ok || e.MAC != netns.HostMAC(1).String() {
		t.Errorf("the port's entry for %s is %v (present %v) after repair --delete-dead; want it kept", okIP, e, ok)
	}
	if _, ok := entries[deadIP]; ok {
		t.Errorf("the port's entry for %s is still there after repair --delete-dead", deadIP)
	}
}

// An entry for one of the host's own addresses (issue 11, case 5): it is
// offlink, named or in the whole table, is not probed, and even
// --include-permanent --delete-dead leaves it.
func TestE2EOwnAddressEntry(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	own := lanPrefix.Addr()
	l.seed(own, netns.HostMAC(0), netlink.NUD_PERMANENT)
	before := l.table()

	for _, a := range [][]string{
		{"verify", "--format", "json"},
		{"verify", "--format", "json", own.String()},
		{"repair", "--format", "json", "--include-permanent", "--delete-dead"},
	} {
		o := arpcheck(t, l.Prober, args(a...))
		r := parseJSON(t, o)
		i := r.peer(t, own)
		p := r.Peers[i]
		if got := objects(r, own); len(got) != 1 || p.Verdict != "offlink" || !strings.Contains(p.Reason, "an address of this host") {
			t.Errorf("%v: %s is %q (%s); want one offlink object, an address of this host\n%s", a, own, got, p.Reason, o)
		}
	}
	if e := l.table()[own]; e != before[own] {
		t.Errorf("the entry for %s is %v after repair; want it kept (%v)", own, e, before[own])
	}
}
