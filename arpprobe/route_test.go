package arpprobe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

// A host with these interfaces:
//
//	1 lo      loopback  127.0.0.1/8
//	2 eth0    up        198.18.0.1/24, 198.18.5.1/24
//	3 eth1    up        198.18.1.1/24
//	4 down0   down      198.18.2.1/24
//	5 tun0    NOARP     198.18.3.1/32
//	6 bare0   up        no address
var testLinks = []Link{
	{Index: 1, Name: "lo", Up: true, Loopback: true, Addrs: []netip.Prefix{mustPrefix("127.0.0.1/8")}},
	{Index: 2, Name: "eth0", Up: true, Addrs: []netip.Prefix{mustPrefix("198.18.0.1/24"), mustPrefix("2001:db8::1/64"), mustPrefix("198.18.5.1/24")}},
	{Index: 3, Name: "eth1", Up: true, Addrs: []netip.Prefix{mustPrefix("198.18.1.1/24")}},
	{Index: 4, Name: "down0", Addrs: []netip.Prefix{mustPrefix("198.18.2.1/24")}},
	{Index: 5, Name: "tun0", Up: true, NoARP: true, Addrs: []netip.Prefix{mustPrefix("198.18.3.1/32")}},
	{Index: 6, Name: "bare0", Up: true},
}

// and this main routing table.
var testRoutes = []Route{
	{Dst: mustPrefix("0.0.0.0/0"), Ifindex: 2, Gateway: mustAddr("198.18.0.254")},
	{Dst: mustPrefix("198.18.0.0/24"), Ifindex: 2, Src: mustAddr("198.18.0.1")},
	{Dst: mustPrefix("198.18.5.0/24"), Ifindex: 2},
	{Dst: mustPrefix("198.18.6.0/24"), Ifindex: 2},
	{Dst: mustPrefix("198.18.1.0/24"), Ifindex: 3, Priority: 100, Src: mustAddr("198.18.1.1")},
	{Dst: mustPrefix("198.18.1.0/24"), Ifindex: 2, Priority: 200},
	{Dst: mustPrefix("198.18.1.128/25"), Ifindex: 3, Gateway: mustAddr("198.18.1.254")},
	{Dst: mustPrefix("198.18.2.0/24"), Ifindex: 4, Src: mustAddr("198.18.2.1")},
	{Dst: mustPrefix("198.18.3.0/24"), Ifindex: 5},
	{Dst: mustPrefix("198.18.4.0/24"), Ifindex: 6},
	{Dst: mustPrefix("198.18.7.0/24"), Ifindex: 0}, // blackhole
	{Dst: mustPrefix("198.18.8.0/24"), Ifindex: 1},
	{Dst: mustPrefix("198.18.9.0/24"), Ifindex: 99}, // a link gone since
	{Dst: mustPrefix("198.18.10.0/24"), Ifindex: 2, Priority: 10},
	{Dst: mustPrefix("198.18.10.0/24"), Ifindex: 3, Priority: 10},
	{Dst: mustPrefix("198.18.11.7/24"), Ifindex: 3}, // not masked
	{Dst: mustPrefix("::/0"), Ifindex: 3},
	{Ifindex: 3}, // no destination
}

// onLink is the want of a peer probed on a link with a source address.
func onLink(peer, iface string, index int, src string) Peer {
	return Peer{IP: mustAddr(peer), Interface: iface, Ifindex: index, Source: mustAddr(src)}
}

// wantOfflink is the want of an offlink peer; reason is a substring of Reason.
func wantOfflink(peer, reason string) Peer {
	return Peer{IP: mustAddr(peer), Verdict: VerdictOfflink, Reason: reason}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name  string
		iface string
		peer  string
		want  Peer
	}{
		{"connected, route's source", "", "198.18.0.7", onLink("198.18.0.7", "eth0", 2, "198.18.0.1")},
		{"source from the subnet", "", "198.18.5.9", onLink("198.18.5.9", "eth0", 2, "198.18.5.1")},
		{"source: first address", "", "198.18.6.9", onLink("198.18.6.9", "eth0", 2, "198.18.0.1")},
		{"source: none", "", "198.18.4.4", onLink("198.18.4.4", "bare0", 6, "0.0.0.0")},
		{"lower priority wins", "", "198.18.1.5", onLink("198.18.1.5", "eth1", 3, "198.18.1.1")},
		{"equal priority: first route", "", "198.18.10.1", onLink("198.18.10.1", "eth0", 2, "198.18.0.1")},
		{"unmasked route", "", "198.18.11.1", onLink("198.18.11.1", "eth1", 3, "198.18.1.1")},
		{"IPv4-mapped IPv6", "", "::ffff:198.18.0.7", onLink("198.18.0.7", "eth0", 2, "198.18.0.1")},
		{"longer prefix through gateway", "", "198.18.1.200", wantOfflink("198.18.1.200", "gateway 198.18.1.254")},
		{"default route", "", "198.19.0.1", wantOfflink("198.19.0.1", "gateway 198.18.0.254 (route 0.0.0.0/0)")},
		{"interface down", "", "198.18.2.9", wantOfflink("198.18.2.9", "down0, which is down")},
		{"NOARP interface", "", "198.18.3.9", wantOfflink("198.18.3.9", "tun0, which does not use ARP")},
		{"loopback interface", "", "198.18.8.1", wantOfflink("198.18.8.1", "loopback interface lo")},
		{"blackhole", "", "198.18.7.1", wantOfflink("198.18.7.1", "route 198.18.7.0/24 has no interface")},
		{"unknown link", "", "198.18.9.1", wantOfflink("198.18.9.1", "has no interface")},
		{"own address", "", "198.18.0.1", wantOfflink("198.18.0.1", "address of this host, on eth0")},
		{"own address, another link", "", "198.18.1.1", wantOfflink("198.18.1.1", "on eth1")},
		{"own address on loopback", "", "127.0.0.1", wantOfflink("127.0.0.1", "on lo")},
		{"subnet broadcast", "", "198.18.0.255", wantOfflink("198.18.0.255", "broadcast address of 198.18.0.0/24 on eth0")},
		{"limited broadcast", "", "255.255.255.255", wantOfflink("255.255.255.255", "broadcast")},
		{"multicast", "", "224.0.0.1", wantOfflink("224.0.0.1", "multicast")},
		{"unspecified", "", "0.0.0.0", wantOfflink("0.0.0.0", "unspecified")},
		{"IPv6", "", "2001:db8::2", wantOfflink("2001:db8::2", "not an IPv4 address")},

		{"iface: other interface's route ignored", "eth0", "198.18.1.5", onLink("198.18.1.5", "eth0", 2, "198.18.0.1")},
		{"iface: connected", "eth0", "198.18.0.7", onLink("198.18.0.7", "eth0", 2, "198.18.0.1")},
		{"iface: only a gateway there", "eth0", "198.19.0.1", wantOfflink("198.19.0.1", "gateway 198.18.0.254")},
		{"iface: no route there", "eth1", "198.18.0.7", wantOfflink("198.18.0.7", "no route through eth1")},
		{"iface: own address elsewhere", "eth1", "198.18.0.1", wantOfflink("198.18.0.1", "address of this host")},
		{"iface: down", "down0", "198.18.2.9", wantOfflink("198.18.2.9", "which is down")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve([]netip.Addr{mustAddr(tt.peer)}, testLinks, testRoutes, tt.iface)
			if err != nil {
				t.Fatalf("Resolve(%s, iface %q): %v", tt.peer, tt.iface, err)
			}
			if len(got) != 1 {
				t.Fatalf("Resolve(%s, iface %q) gave %d peers; want 1", tt.peer, tt.iface, len(got))
			}
			checkPeer(t, got[0], tt.want)
		})
	}
}

// checkPeer compares where a peer goes; want.Reason is a substring.
func checkPeer(t *testing.T, got, want Peer) {
	t.Helper()
	if got.IP != want.IP || got.Interface != want.Interface || got.Ifindex != want.Ifindex ||
		got.Source != want.Source || got.Via != want.Via || got.Verdict != want.Verdict || got.Cached != nil ||
		!strings.Contains(got.Reason, want.Reason) || (want.Reason == "") != (got.Reason == "") {
		t.Errorf("got  %s\nwant %s", peerString(got), peerString(want))
	}
}

// checkPeers checks got against want, peer by peer.
func checkPeers(t *testing.T, got, want []Peer) {
	t.Helper()
	if len(got) != len(want) {
		for _, p := range got {
			t.Log(peerString(p))
		}
		t.Fatalf("got %d peers; want %d", len(got), len(want))
	}
	for i := range want {
		checkPeer(t, got[i], want[i])
	}
}

func peerString(p Peer) string {
	return fmt.Sprintf("{%s on %q (%d) via %d from %s, verdict %q, reason %q, cached %v}",
		p.IP, p.Interface, p.Ifindex, p.Via, p.Source, p.Verdict, p.Reason, p.Cached)
}

func TestResolveKeepsOrderAndRepeats(t *testing.T) {
	peers := []netip.Addr{mustAddr("198.19.0.1"), mustAddr("198.18.0.9"), mustAddr("198.18.1.9"), mustAddr("198.18.0.9")}
	got, err := Resolve(peers, testLinks, testRoutes, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		wantOfflink("198.19.0.1", "gateway"),
		onLink("198.18.0.9", "eth0", 2, "198.18.0.1"),
		onLink("198.18.1.9", "eth1", 3, "198.18.1.1"),
		onLink("198.18.0.9", "eth0", 2, "198.18.0.1"),
	}
	if len(got) != len(want) {
		t.Fatalf("got %d peers; want %d", len(got), len(want))
	}
	for i := range want {
		checkPeer(t, got[i], want[i])
	}
}

func TestResolveEmpty(t *testing.T) {
	tests := []struct {
		name   string
		links  []Link
		routes []Route
		want   Peer
	}{
		{"no routes", testLinks, nil, wantOfflink("198.18.0.7", "no route")},
		{"nothing at all", nil, nil, wantOfflink("198.18.0.7", "no route")},
		{"route, no links", nil, testRoutes, wantOfflink("198.18.0.7", "has no interface")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve([]netip.Addr{tt.want.IP}, tt.links, tt.routes, "")
			if err != nil || len(got) != 1 {
				t.Fatalf("Resolve = %v, %v; want one peer", got, err)
			}
			checkPeer(t, got[0], tt.want)
		})
	}
	if got, err := Resolve(nil, testLinks, testRoutes, ""); err != nil || len(got) != 0 {
		t.Errorf("Resolve(no peers) = %v, %v; want none", got, err)
	}
}

func TestResolveUnknownInterface(t *testing.T) {
	got, err := Resolve([]netip.Addr{mustAddr("198.18.0.7")}, testLinks, testRoutes, "nosuch0")
	if !errors.Is(err, ErrUnknownInterface) || got != nil {
		t.Fatalf("Resolve(iface nosuch0) = %v, %v; want nil, ErrUnknownInterface", got, err)
	}
	if want := `arpprobe: interface "nosuch0": unknown interface`; err.Error() != want {
		t.Errorf("error %q; want %q", err, want)
	}
}

func TestPeersFromNeighbors(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x07}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	n := func(s string, ifindex int, m net.HardwareAddr, st State) Neighbor {
		return Neighbor{IP: mustAddr(s), Ifindex: ifindex, MAC: m, State: st}
	}
	entries := []Neighbor{
		n("198.18.0.7", 2, mac, StateStale),
		n("198.18.0.7", 2, mac, StateReachable), // a repeat
		n("198.18.0.7", 3, mac, StateStale),     // same address, other link
		n("127.0.0.5", 1, nil, StateNoARP),      // loopback link
		n("198.18.3.9", 5, nil, StateNoARP),     // NOARP link
		n("198.18.0.255", 2, bcast, StateNoARP), // the subnet's broadcast
		n("224.0.0.22", 2, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 0x16}, StateNoARP),
		n("198.18.0.8", 2, mac, StatePermanent),
		n("198.18.0.9", 2, mac, StateNoARP), // set by hand: kept
		n("2001:db8::7", 2, mac, StateStale),
		n("198.18.0.10", 42, mac, StateStale), // link gone since
		n("198.18.5.5", 2, nil, StateIncomplete),
		n("::ffff:198.18.4.4", 6, mac, StateStale),
		n("198.18.2.9", 4, mac, StatePermanent), // down link: the prober reports it
	}
	tests := []struct {
		iface string
		want  []Peer
	}{
		{"", []Peer{
			onLink("198.18.0.7", "eth0", 2, "198.18.0.1"),
			onLink("198.18.0.7", "eth1", 3, "198.18.1.1"),
			onLink("198.18.0.8", "eth0", 2, "198.18.0.1"),
			onLink("198.18.0.9", "eth0", 2, "198.18.0.1"),
			onLink("198.18.5.5", "eth0", 2, "198.18.5.1"),
			onLink("198.18.4.4", "bare0", 6, "0.0.0.0"),
			onLink("198.18.2.9", "down0", 4, "198.18.2.1"),
		}},
		{"eth1", []Peer{onLink("198.18.0.7", "eth1", 3, "198.18.1.1")}},
		{"lo", nil},
		{"nosuch0", nil},
	}
	for _, tt := range tests {
		t.Run("iface "+tt.iface, func(t *testing.T) {
			checkPeers(t, PeersFromNeighbors(entries, testLinks, tt.iface), tt.want)
		})
	}
}

// BenchmarkResolve resolves 50,000 peers against a table of 2,000 routes.
func BenchmarkResolve(b *testing.B) {
	links := []Link{{Index: 2, Name: "eth0", Up: true, Addrs: []netip.Prefix{mustPrefix("198.18.0.1/15")}}}
	var routes []Route
	for i := range 2000 {
		routes = append(routes, Route{
			Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), Ifindex: 2,
			Gateway: mustAddr("198.18.0.254"),
		})
	}
	routes = append(routes, Route{Dst: mustPrefix("198.18.0.0/15"), Ifindex: 2})
	peers := make([]netip.Addr, 50000)
	for i := range peers {
		peers[i] = netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		ps, err := Resolve(peers, links, routes, "")
		if err != nil || ps[12345].Interface != "eth0" {
			b.Fatalf("Resolve: %v, %+v", err, ps[12345])
		}
	}
}

// TestNamedPeerMeansEveryEntry: a named peer means the entries the whole
// table gives for its address (issue 11, cases 1, 4, 5, 7): one peer on
// every interface that holds one, the route's source kept on the route's
// interface; an address of this host is one offlink peer; an entry on a
// bridge port with no address of its own is probed through the bridge;
// a peer without entries keeps its route, or its offlink verdict.
func TestNamedPeerMeansEveryEntry(t *testing.T) {
	links := append(slices.Clone(testLinks),
		Link{Index: 7, Name: "br0", Up: true, Addrs: []netip.Prefix{mustPrefix("198.18.9.1/24")}},
		Link{Index: 8, Name: "port0", Up: true, Master: 7},
	)
	routes := append(slices.Clone(testRoutes), Route{Dst: mustPrefix("198.18.9.0/24"), Ifindex: 7})
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x07}
	n := func(s string, ifindex int) Neighbor {
		return Neighbor{IP: mustAddr(s), Ifindex: ifindex, MAC: mac, State: StateStale}
	}
	entries := []Neighbor{
		n("198.18.1.7", 3), n("198.18.1.7", 2), // on both NICs of 198.18.1.0/24
		n("198.18.0.1", 2), n("198.18.0.1", 3), // this host's address
		n("198.18.9.5", 8), // on the bridge's port
		n("198.19.0.9", 2), // routed through the gateway, a leftover entry
		n("127.0.0.9", 1),  // loopback: not an entry a peer means
	}
	via := func(p Peer, index int) Peer { p.Via = index; return p }
	tests := []struct {
		peer string
		want []Peer
	}{
		{"198.18.1.7", []Peer{onLink("198.18.1.7", "eth1", 3, "198.18.1.1"), onLink("198.18.1.7", "eth0", 2, "198.18.0.1")}},
		{"198.18.0.1", []Peer{wantOfflink("198.18.0.1", "an address of this host, on eth0")}},
		{"198.18.9.5", []Peer{via(onLink("198.18.9.5", "port0", 8, "198.18.9.1"), 7)}},
		{"198.19.0.9", []Peer{onLink("198.19.0.9", "eth0", 2, "198.18.0.1")}},
		{"198.18.0.9", []Peer{onLink("198.18.0.9", "eth0", 2, "198.18.0.1")}},        // no entry: its route
		{"198.19.5.5", []Peer{wantOfflink("198.19.5.5", "reached through gateway")}}, // no entry, offlink
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			resolved, err := Resolve([]netip.Addr{mustAddr(tt.peer)}, links, routes, "")
			if err != nil {
				t.Fatal(err)
			}
			got := onEveryEntry(resolved, entries, links, "")
			checkPeers(t, got, tt.want)
			whole := PeersFromNeighbors(entries, links, "")
			var same []Peer
			for _, p := range whole {
				if p.IP == mustAddr(tt.peer) {
					same = append(same, p)
				}
			}
			if len(same) > 0 && len(same) != len(got) {
				t.Errorf("whole-table mode gives %d peers for %s, named %d", len(same), tt.peer, len(got))
			}
		})
	}
}

// BenchmarkPeersFromNeighbors gives the peers of a table of 4,000 IPv4
// entries, the whole-table check of `arpcheck watch` and of verify
// without peers.
func BenchmarkPeersFromNeighbors(b *testing.B) {
	links := []Link{{Index: 2, Name: "eth0", Up: true, Addrs: []netip.Prefix{mustPrefix("198.18.0.1/15")}}}
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x07}
	entries := make([]Neighbor, 4000)
	for i := range entries {
		entries[i] = Neighbor{IP: netip.AddrFrom4([4]byte{198, 18, byte((i + 2) >> 8), byte(i + 2)}), Ifindex: 2,
			MAC: mac, State: StateStale}
	}
	b.ReportAllocs()
	for b.Loop() {
		if ps := PeersFromNeighbors(entries, links, ""); len(ps) != len(entries) {
			b.Fatalf("PeersFromNeighbors: %d peers, want %d", len(ps), len(entries))
		}
	}
}
