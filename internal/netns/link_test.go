package netns

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestVethBetweenNamespaces(t *testing.T) {
	a, b := NewT(t), NewT(t)
	aAddr, bAddr := netip.MustParsePrefix("198.18.0.1/30"), netip.MustParsePrefix("198.18.0.2/30")
	if err := Veth(a, "va", b, "vb"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		a.AddAddr("va", aAddr), b.AddAddr("vb", bAddr), a.SetUp("va"), b.SetUp("vb"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each end lives only in its own namespace.
	if linkGone(a, "vb") != nil || linkGone(b, "va") != nil {
		t.Fatal("a veth end is visible in the other namespace")
	}
	vb, err := b.Handle().LinkByName("vb")
	if err != nil {
		t.Fatal(err)
	}
	aIndex, err := a.LinkIndex("va")
	if err != nil {
		t.Fatal(err)
	}
	if vb.Attrs().ParentIndex != aIndex {
		t.Errorf("vb's peer ifindex %d; want va's %d", vb.Attrs().ParentIndex, aIndex)
	}
	for _, end := range []struct {
		ns   *NS
		name string
		addr netip.Prefix
	}{{a, "va", aAddr}, {b, "vb", bAddr}} {
		eventually(t, 5*time.Second, func() error {
			l, err := end.ns.Handle().LinkByName(end.name)
			if err != nil {
				return err
			}
			if st := l.Attrs().OperState; st != netlink.OperUp {
				return fmt.Errorf("%s is %s; want up", end.name, st)
			}
			return nil
		})
		addrs, err := end.ns.Handle().AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ad := range addrs {
			got = append(got, ad.IPNet.String())
		}
		if fmt.Sprint(got) != fmt.Sprintf("[127.0.0.1/8 %s]", end.addr) {
			t.Errorf("%s addresses %v; want [127.0.0.1/8 %s]", end.name, got, end.addr)
		}
	}

	// A datagram crosses the pair, after a's kernel resolved b by ARP.
	if src := udpExchange(t, a, b, bAddr.Addr()); src != aAddr.Addr() {
		t.Errorf("datagram came from %s; want %s", src, aAddr.Addr())
	}
	bMAC, err := b.LinkMAC("vb")
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.Neigh("va", bAddr.Addr())
	if err != nil || n == nil {
		t.Fatalf("Neigh(va, %s) = %v, %v; want the learned entry", bAddr.Addr(), n, err)
	}
	if !bytes.Equal(n.HardwareAddr, bMAC) || n.State&netlink.NUD_REACHABLE == 0 {
		t.Errorf("learned entry %s state %#x; want %s REACHABLE", n.HardwareAddr, n.State, bMAC)
	}
}

func TestSetMACWhileUp(t *testing.T) {
	ns := NewT(t)
	if err := Veth(ns, "v0", ns, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetUp("v0"); err != nil {
		t.Fatal(err)
	}
	want := net.HardwareAddr{0x02, 0, 0, 0, 0xab, 0xcd}
	if err := ns.SetMAC("v0", want); err != nil {
		t.Fatal(err)
	}
	if got, err := ns.LinkMAC("v0"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("LinkMAC(v0) = %s, %v; want %s", got, err, want)
	}
	if err := ns.DeleteLink("v1"); err != nil {
		t.Fatal(err)
	}
	if err := linkGone(ns, "v0"); err != nil {
		t.Errorf("deleting one veth end: %v", err)
	}
}

func TestBridgeAndMacvlan(t *testing.T) {
	ns := NewT(t)
	for _, err := range []error{
		ns.Bridge("br0"), Veth(ns, "p0", ns, "p1"), ns.SetMaster("p0", "br0"), ns.Macvlan("p1", "mv0"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	br, err := ns.LinkIndex("br0")
	if err != nil {
		t.Fatal(err)
	}
	p0, err := ns.Handle().LinkByName("p0")
	if err != nil {
		t.Fatal(err)
	}
	if p0.Attrs().MasterIndex != br {
		t.Errorf("p0 master %d; want br0 (%d)", p0.Attrs().MasterIndex, br)
	}
	l, err := ns.Handle().LinkByName("mv0")
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := l.(*netlink.Macvlan)
	if !ok {
		t.Fatalf("mv0 is a %s; want macvlan", l.Type())
	}
	p1, _ := ns.LinkIndex("p1")
	if mv.Mode != netlink.MACVLAN_MODE_PRIVATE || mv.ParentIndex != p1 {
		t.Errorf("mv0 mode %d on %d; want private (%d) on p1 (%d)", mv.Mode, mv.ParentIndex, netlink.MACVLAN_MODE_PRIVATE, p1)
	}
	if err := ns.Macvlan("nosuch", "mv1"); err == nil {
		t.Error("Macvlan on a missing parent succeeded")
	}
}

func TestAddRoute(t *testing.T) {
	ns := NewT(t)
	if err := Veth(ns, "v0", ns, "v1"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		ns.AddAddr("v0", netip.MustParsePrefix("198.18.0.1/24")),
		ns.SetUp("v0"),
		ns.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), "v0", netip.MustParseAddr("198.18.0.254")),
		ns.AddRoute(netip.MustParsePrefix("198.18.7.9/24"), "v0", netip.Addr{}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	routes, err := ns.Handle().RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range routes {
		got[r.Dst.String()] = r.Gw.String()
	}
	want := map[string]string{"198.18.0.0/24": "<nil>", "198.18.7.0/24": "<nil>", "198.19.0.0/16": "198.18.0.254"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routes (dst: gateway) %v; want %v", got, want)
	}
}
