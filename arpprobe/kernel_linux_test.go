package arpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// kernelLab is a namespace holding a veth pair:
//
//	k0  up   198.18.0.1/24            an Ethernet LAN
//	k1  up   NOARP, 198.18.9.1/24     a link without ARP
//
// with routes: default and 198.19.0.0/16 via 198.18.0.254, a blackhole
// 198.18.7.0/24, and a multipath 198.18.8.0/24 via .253 then .252.
type kernelLab struct {
	ns     *netns.NS
	k      *Kernel
	k0, k1 int
}

var (
	labMAC1 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	labMAC2 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
	labMAC3 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x04}
)

func newKernelLab(t *testing.T) *kernelLab {
	t.Helper()
	ns := netns.NewT(t)
	h := ns.Handle()
	gw := netip.MustParseAddr("198.18.0.254")
	steps := []func() error{
		func() error { return netns.Veth(ns, "k0", ns, "k1") },
		func() error { return ns.AddAddr("k0", netip.MustParsePrefix("198.18.0.1/24")) },
		func() error { return ns.AddAddr("k1", netip.MustParsePrefix("198.18.9.1/24")) },
		func() error { return ns.SetUp("k0") },
		func() error { return ns.SetUp("k1") },
		func() error {
			k1, err := h.LinkByName("k1")
			if err != nil {
				return err
			}
			return h.LinkSetARPOff(k1)
		},
		func() error { return ns.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), "k0", gw) },
		func() error { return ns.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), "k0", gw) },
		func() error {
			return h.RouteAdd(&netlink.Route{Dst: ipNet("198.18.7.0/24"), Type: unix.RTN_BLACKHOLE})
		},
		func() error {
			k0, err := h.LinkByName("k0")
			if err != nil {
				return err
			}
			return h.RouteAdd(&netlink.Route{Dst: ipNet("198.18.8.0/24"), MultiPath: []*netlink.NexthopInfo{
				{LinkIndex: k0.Attrs().Index, Gw: net.ParseIP("198.18.0.253")},
				{LinkIndex: k0.Attrs().Index, Gw: net.ParseIP("198.18.0.252")},
			}})
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	k, err := OpenKernelAt(ns.NsHandle())
	if err != nil {
		t.Fatal(err)
	}
	lab := &kernelLab{ns: ns, k: k}
	if lab.k0, err = ns.LinkIndex("k0"); err != nil {
		t.Fatal(err)
	}
	if lab.k1, err = ns.LinkIndex("k1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.k.Close(); err != nil {
			t.Errorf("Kernel.Close: %v", err)
		}
	})
	return lab
}

func ipNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// seed adds entries through the test helper, not through Kernel.
func (lab *kernelLab) seed(t *testing.T) {
	t.Helper()
	for _, e := range []struct {
		ip           string
		mac          net.HardwareAddr
		state, flags int
	}{
		{"198.18.0.2", labMAC1, netlink.NUD_STALE, 0},
		{"198.18.0.3", labMAC2, netlink.NUD_PERMANENT, 0},
		{"198.18.0.4", labMAC3, netlink.NUD_STALE, netlink.NTF_EXT_LEARNED},
	} {
		if err := lab.ns.AddNeigh("k0", netip.MustParseAddr(e.ip), e.mac, e.state, e.flags); err != nil {
			t.Fatal(err)
		}
	}
}

// neighbors reads the table through the Kernel, sorted by address.
func (lab *kernelLab) neighbors(t *testing.T) []Neighbor {
	t.Helper()
	got, err := lab.k.Neighbors(context.Background())
	if err != nil {
		t.Fatalf("Neighbors: %v", err)
	}
	slices.SortFunc(got, func(a, b Neighbor) int { return a.IP.Compare(b.IP) })
	return got
}

func neighborString(n Neighbor) string {
	return fmt.Sprintf("%s dev %s (%d) lladdr %v %s flags %#x", n.IP, n.Interface, n.Ifindex, n.MAC, n.State, uint32(n.Flags))
}

func neighborsString(ns []Neighbor) string {
	var b strings.Builder
	for _, n := range ns {
		b.WriteString("\n\t" + neighborString(n))
	}
	return b.String()
}

func TestKernelNeighbors(t *testing.T) {
	lab := newKernelLab(t)
	if got := lab.neighbors(t); len(got) != 0 {
		t.Fatalf("a new namespace's table: %s; want empty", neighborsString(got))
	}
	lab.seed(t)
	want := []Neighbor{
		{IP: netip.MustParseAddr("198.18.0.2"), Ifindex: lab.k0, Interface: "k0", MAC: labMAC1, State: StateStale},
		{IP: netip.MustParseAddr("198.18.0.3"), Ifindex: lab.k0, Interface: "k0", MAC: labMAC2, State: StatePermanent},
		{IP: netip.MustParseAddr("198.18.0.4"), Ifindex: lab.k0, Interface: "k0", MAC: labMAC3, State: StateStale, Flags: FlagExternLearned},
	}
	if got := lab.neighbors(t); neighborsString(got) != neighborsString(want) {
		t.Errorf("Neighbors:%s\nwant:%s", neighborsString(got), neighborsString(want))
	}

	// An entry without a MAC: a datagram to an address nobody answers
	// for makes the kernel ask by ARP and hold an INCOMPLETE entry for
	// about three seconds, then a FAILED one.
	silent := netip.MustParseAddr("198.18.0.77")
	err := lab.ns.Do(func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(silent, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("arpcheck"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := lab.neighbors(t)
	i := slices.IndexFunc(got, func(n Neighbor) bool { return n.IP == silent })
	if i < 0 || got[i].MAC != nil || got[i].State&(StateIncomplete|StateFailed) == 0 || got[i].Interface != "k0" {
		t.Errorf("Neighbors:%s\nwant 198.18.0.77 dev k0 INCOMPLETE or FAILED with a nil MAC", neighborsString(got))
	}
}

func TestKernelSetAndDeleteNeighbor(t *testing.T) {
	lab := newKernelLab(t)
	ctx := context.Background()
	ip := netip.MustParseAddr("198.18.0.5")
	find := func() *Neighbor {
		for _, n := range lab.neighbors(t) {
			if n.IP == ip {
				return &n
			}
		}
		return nil
	}
	steps := []struct {
		name string
		set  Neighbor
		want string // neighborString of the entry afterwards
	}{
		{"create", Neighbor{IP: ip, Ifindex: lab.k0, MAC: labMAC1, State: StateStale},
			"198.18.0.5 dev k0 (%d) lladdr 02:00:00:00:00:02 STALE flags 0x0"},
		{"replace MAC and state", Neighbor{IP: ip, Ifindex: lab.k0, MAC: labMAC2, State: StatePermanent},
			"198.18.0.5 dev k0 (%d) lladdr 02:00:00:00:00:03 PERMANENT flags 0x0"},
		{"extern_learn; other flags not written", Neighbor{IP: ip, Ifindex: lab.k0, MAC: labMAC3, State: StateReachable,
			Flags: FlagExternLearned | 0x08 /* NTF_PROXY */ | 0x80 /* NTF_ROUTER */}, // would make a proxy entry
			"198.18.0.5 dev k0 (%d) lladdr 02:00:00:00:00:04 REACHABLE flags 0x10"},
		{"replace keeps extern_learn when given", Neighbor{IP: ip, Ifindex: lab.k0, MAC: labMAC1, State: StateStale, Flags: FlagExternLearned},
			"198.18.0.5 dev k0 (%d) lladdr 02:00:00:00:00:02 STALE flags 0x10"},
		{"replace without it clears it", Neighbor{IP: ip, Ifindex: lab.k0, MAC: labMAC1, State: StateStale},
			"198.18.0.5 dev k0 (%d) lladdr 02:00:00:00:00:02 STALE flags 0x0"},
	}
	for _, s := range steps {
		if err := lab.k.SetNeighbor(ctx, s.set); err != nil {
			t.Fatalf("%s: SetNeighbor: %v", s.name, err)
		}
		n := find()
		want := fmt.Sprintf(s.want, lab.k0)
		if n == nil || neighborString(*n) != want {
			t.Errorf("%s: entry %v; want %s", s.name, n, want)
		}
	}
	proxies, err := lab.ns.Handle().NeighProxyList(0, netlink.FAMILY_V4)
	if err != nil || len(proxies) != 0 {
		t.Errorf("proxy entries %v, %v; want none", proxies, err)
	}

	// Only the address and interface matter to a delete.
	if err := lab.k.DeleteNeighbor(ctx, Neighbor{IP: ip, Ifindex: lab.k0, MAC: labMAC3}); err != nil {
		t.Fatalf("DeleteNeighbor: %v", err)
	}
	if n := find(); n != nil {
		t.Errorf("after DeleteNeighbor: %s; want no entry", neighborString(*n))
	}
	err = lab.k.DeleteNeighbor(ctx, Neighbor{IP: ip, Ifindex: lab.k0, Interface: "k0"})
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "arpprobe: delete neighbour 198.18.0.5 dev k0: ") {
		t.Errorf("deleting a missing entry: %v; want an ErrNotExist error naming it", err)
	}
}

func TestKernelNeighborErrors(t *testing.T) {
	lab := newKernelLab(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	v4 := netip.MustParseAddr("198.18.0.6")
	tests := []struct {
		name string
		ctx  context.Context
		n    Neighbor
		is   error // nil: any error
	}{
		{"no state", context.Background(), Neighbor{IP: v4, Ifindex: lab.k0, MAC: labMAC1}, nil},
		{"IPv6", context.Background(), Neighbor{IP: netip.MustParseAddr("2001:db8::6"), Ifindex: lab.k0, MAC: labMAC1, State: StateStale}, nil},
		{"no interface", context.Background(), Neighbor{IP: v4, MAC: labMAC1, State: StateStale}, nil},
		{"no such interface", context.Background(), Neighbor{IP: v4, Ifindex: 9999, MAC: labMAC1, State: StateStale}, nil},
		{"canceled", canceled, Neighbor{IP: v4, Ifindex: lab.k0, MAC: labMAC1, State: StateStale}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lab.k.SetNeighbor(tt.ctx, tt.n)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.HasPrefix(err.Error(), "arpprobe: ") {
				t.Errorf("SetNeighbor(%s) = %v; want an arpprobe error (is %v)", neighborString(tt.n), err, tt.is)
			}
		})
	}
	if got := lab.neighbors(t); len(got) != 0 {
		t.Errorf("failed writes left entries:%s", neighborsString(got))
	}
	for name, read := range map[string]func(context.Context) error{
		"Neighbors": func(ctx context.Context) error { _, err := lab.k.Neighbors(ctx); return err },
		"Links":     func(ctx context.Context) error { _, err := lab.k.Links(ctx); return err },
		"Routes":    func(ctx context.Context) error { _, err := lab.k.Routes(ctx); return err },
	} {
		if err := read(canceled); !errors.Is(err, context.Canceled) {
			t.Errorf("%s(canceled ctx) = %v; want context.Canceled", name, err)
		}
	}
}

func TestKernelLinks(t *testing.T) {
	lab := newKernelLab(t)
	mac0, err := lab.ns.LinkMAC("k0")
	if err != nil {
		t.Fatal(err)
	}
	mac1, err := lab.ns.LinkMAC("k1")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.ns.AddAddr("k0", netip.MustParsePrefix("198.18.5.1/25")); err != nil {
		t.Fatal(err)
	}
	got, err := lab.k.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{
		{Index: 1, Name: "lo", Up: true, Loopback: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Index: lab.k0, Name: "k0", MAC: mac0, Up: true,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("198.18.5.1/25")}},
		{Index: lab.k1, Name: "k1", MAC: mac1, Up: true, NoARP: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.9.1/24")}},
	}
	byIndex := func(a, b Link) int { return a.Index - b.Index }
	slices.SortFunc(got, byIndex)
	slices.SortFunc(want, byIndex)
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("Links:\n%+v\nwant:\n%+v", got, want)
	}
	if err := lab.ns.SetDown("k1"); err != nil {
		t.Fatal(err)
	}
	got, err = lab.k.Links(context.Background())
	if i := slices.IndexFunc(got, func(l Link) bool { return l.Name == "k1" }); err != nil || i < 0 || got[i].Up {
		t.Errorf("after SetDown(k1): %+v, %v; want k1 down", got, err)
	}
}

func routeString(r Route) string {
	return fmt.Sprintf("%s dev %d via %v src %v metric %d", r.Dst, r.Ifindex, r.Gateway, r.Src, r.Priority)
}

func TestKernelRoutes(t *testing.T) {
	lab := newKernelLab(t)
	got, err := lab.k.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var gotS []string
	for _, r := range got {
		gotS = append(gotS, routeString(r))
	}
	slices.Sort(gotS)
	gw := netip.MustParseAddr("198.18.0.254")
	wantR := []Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Ifindex: lab.k0, Gateway: gw},
		{Dst: netip.MustParsePrefix("198.19.0.0/16"), Ifindex: lab.k0, Gateway: gw},
		{Dst: netip.MustParsePrefix("198.18.0.0/24"), Ifindex: lab.k0, Src: netip.MustParseAddr("198.18.0.1")},
		{Dst: netip.MustParsePrefix("198.18.9.0/24"), Ifindex: lab.k1, Src: netip.MustParseAddr("198.18.9.1")},
		{Dst: netip.MustParsePrefix("198.18.7.0/24")}, // blackhole
		{Dst: netip.MustParsePrefix("198.18.8.0/24"), Ifindex: lab.k0, Gateway: netip.MustParseAddr("198.18.0.253")},
	}
	var wantS []string
	for _, r := range wantR {
		wantS = append(wantS, routeString(r))
	}
	slices.Sort(wantS)
	if strings.Join(gotS, "\n") != strings.Join(wantS, "\n") {
		t.Errorf("Routes:\n\t%s\nwant:\n\t%s", strings.Join(gotS, "\n\t"), strings.Join(wantS, "\n\t"))
	}
}

// TestKernelResolve resolves peers on the real links and routes, and
// checks the onlink ones against the kernel's own route lookup.
func TestKernelResolve(t *testing.T) {
	lab := newKernelLab(t)
	ctx := context.Background()
	links, err := lab.k.Links(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := lab.k.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("198.18.0.1")
	tests := []struct {
		peer   string
		iface  string
		want   Peer
		reason string
	}{
		{"198.18.0.2", "", Peer{Interface: "k0", Ifindex: lab.k0, Source: src}, ""},
		{"198.18.0.200", "k0", Peer{Interface: "k0", Ifindex: lab.k0, Source: src}, ""},
		{"198.19.1.1", "", Peer{Verdict: VerdictOfflink}, "gateway 198.18.0.254"},
		{"198.18.8.1", "", Peer{Verdict: VerdictOfflink}, "gateway 198.18.0.253"},
		{"198.18.7.1", "", Peer{Verdict: VerdictOfflink}, "no interface"},
		{"198.18.9.5", "", Peer{Verdict: VerdictOfflink}, "does not use ARP"},
		{"198.18.0.1", "", Peer{Verdict: VerdictOfflink}, "address of this host"},
		{"198.18.0.255", "", Peer{Verdict: VerdictOfflink}, "broadcast address of 198.18.0.0/24 on k0"},
		{"198.18.9.5", "k0", Peer{Verdict: VerdictOfflink}, "gateway 198.18.0.254"},
	}
	for _, tt := range tests {
		t.Run(tt.peer+" "+tt.iface, func(t *testing.T) {
			peer := netip.MustParseAddr(tt.peer)
			got, err := Resolve([]netip.Addr{peer}, links, routes, tt.iface)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.IP, want.Reason = peer, tt.reason
			checkPeer(t, got[0], want)
			if got[0].Verdict != "" || tt.iface != "" {
				return
			}
			kr, err := lab.ns.Handle().RouteGet(peer.AsSlice())
			if err != nil || len(kr) == 0 {
				t.Fatalf("RouteGet(%s) = %v, %v", peer, kr, err)
			}
			ksrc, _ := netip.AddrFromSlice(kr[0].Src)
			if kr[0].LinkIndex != got[0].Ifindex || ksrc.Unmap() != got[0].Source || kr[0].Gw != nil {
				t.Errorf("kernel routes %s via ifindex %d gw %v from %s; Resolve says ifindex %d from %s",
					peer, kr[0].LinkIndex, kr[0].Gw, ksrc, got[0].Ifindex, got[0].Source)
			}
		})
	}
}

// TestKernelPeersFromNeighbors lists the peers of a real table.
func TestKernelPeersFromNeighbors(t *testing.T) {
	lab := newKernelLab(t)
	lab.seed(t)
	if err := lab.ns.AddNeigh("k1", netip.MustParseAddr("198.18.9.9"), nil, netlink.NUD_NOARP, 0); err != nil {
		t.Fatal(err)
	}
	entries := lab.neighbors(t)
	links, err := lab.k.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := PeersFromNeighbors(entries, links, "")
	src := netip.MustParseAddr("198.18.0.1")
	var want []Peer
	for _, a := range []string{"198.18.0.2", "198.18.0.3", "198.18.0.4"} { // not 198.18.9.9, on a NOARP link
		want = append(want, Peer{IP: netip.MustParseAddr(a), Interface: "k0", Ifindex: lab.k0, Source: src})
	}
	if len(got) != len(want) {
		t.Fatalf("PeersFromNeighbors gave %d peers; want %d", len(got), len(want))
	}
	for i := range want {
		checkPeer(t, got[i], want[i])
	}
}

// TestKernelWriteWithoutPrivilege drops CAP_NET_ADMIN from one thread, in
// a namespace of that thread's own, and writes from it: the error says
// which capability is missing and satisfies os.ErrPermission; reading
// still works.
func TestKernelWriteWithoutPrivilege(t *testing.T) {
	netns.Require(t)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		errc <- writeWithoutPrivilege()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func writeWithoutPrivilege() error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	k, err := OpenKernel()
	if err != nil {
		return err
	}
	defer k.Close()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[unix.CAP_NET_ADMIN/32].Effective &^= 1 << (unix.CAP_NET_ADMIN % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	ctx := context.Background()
	n := Neighbor{IP: netip.MustParseAddr("198.18.0.2"), Ifindex: 1, Interface: "lo", MAC: labMAC1, State: StateStale}
	for op, write := range map[string]func() error{
		"replace": func() error { return k.SetNeighbor(ctx, n) },
		"delete":  func() error { return k.DeleteNeighbor(ctx, n) },
	} {
		err := write()
		want := "arpprobe: " + op + " neighbour 198.18.0.2 dev lo: operation not permitted (writing the neighbour table needs CAP_NET_ADMIN)"
		var ce *CapabilityError
		if !errors.Is(err, os.ErrPermission) || err.Error() != want || !errors.As(err, &ce) || ce.Capability != "CAP_NET_ADMIN" {
			return fmt.Errorf("%s without CAP_NET_ADMIN: %v; want os.ErrPermission and %q", op, err, want)
		}
	}
	if _, err := k.Neighbors(ctx); err != nil {
		return fmt.Errorf("Neighbors without CAP_NET_ADMIN: %v; want no error", err)
	}
	return nil
}
