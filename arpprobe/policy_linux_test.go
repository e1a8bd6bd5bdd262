package arpprobe

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// policyTable is the routing table the policy-routing tests route through.
const policyTable = 10

// addPolicySubnet gives link in lab an address of subnet without its
// connected route in the main table (noprefixroute), puts that route in
// table policyTable only, and adds the rule `to subnet lookup policyTable`.
func addPolicySubnet(t *testing.T, lab *kernelLab, link string, addr netip.Prefix) {
	t.Helper()
	h := lab.ns.Handle()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	a := &netlink.Addr{IPNet: ipNet(addr.String()), Flags: unix.IFA_F_NOPREFIXROUTE}
	a.IPNet.IP = addr.Addr().AsSlice()
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("add %s noprefixroute: %v", addr, err)
	}
	subnet := ipNet(addr.Masked().String())
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: subnet, Table: policyTable,
		Scope: netlink.SCOPE_LINK, Src: addr.Addr().AsSlice()}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("add route %s table %d: %v", subnet, policyTable, err)
	}
	rule := netlink.NewRule()
	rule.Family, rule.Dst, rule.Table = netlink.FAMILY_V4, subnet, policyTable
	if err := h.RuleAdd(rule); err != nil {
		t.Fatalf("add rule to %s lookup %d: %v", subnet, policyTable, err)
	}
}

// resolveLikeKernel resolves peer in lab and checks that it is onlink on
// the interface and from the source the kernel's own lookup (which
// follows the rules) gives.
func resolveLikeKernel(t *testing.T, lab *kernelLab, peer netip.Addr, wantIface string, wantSrc netip.Addr) {
	t.Helper()
	ctx := context.Background()
	links, err := lab.k.Links(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := lab.k.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve([]netip.Addr{peer}, links, routes, "")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lab.ns.LinkIndex(wantIface)
	if err != nil {
		t.Fatal(err)
	}
	checkPeer(t, got[0], Peer{IP: peer, Interface: wantIface, Ifindex: idx, Source: wantSrc})
	kr, err := lab.ns.Handle().RouteGet(peer.AsSlice())
	if err != nil || len(kr) == 0 {
		t.Fatalf("RouteGet(%s) = %v, %v", peer, kr, err)
	}
	ksrc, _ := netip.AddrFromSlice(kr[0].Src)
	if kr[0].LinkIndex != got[0].Ifindex || ksrc.Unmap() != got[0].Source || kr[0].Gw != nil {
		t.Errorf("kernel routes %s via ifindex %d gw %v from %s; Resolve says ifindex %d from %s",
			peer, kr[0].LinkIndex, kr[0].Gw, ksrc, got[0].Ifindex, got[0].Source)
	}
}

// TestKernelResolvePolicyRouting resolves a peer whose connected route is
// only in a table a policy rule chooses (issue 11, case 2): it is onlink
// on that route's interface, as the kernel routes it, not "no route".
func TestKernelResolvePolicyRouting(t *testing.T) {
	lab := newKernelLab(t)
	addPolicySubnet(t, lab, "k0", netip.MustParsePrefix("198.18.12.1/24"))
	resolveLikeKernel(t, lab, netip.MustParseAddr("198.18.12.7"), "k0", netip.MustParseAddr("198.18.12.1"))
}

// TestKernelResolveVRF resolves a peer on an interface enslaved to a VRF,
// whose connected route is in the VRF's table. It runs where the kernel
// has the VRF driver; where it has not, it says so (under CI=true with
// t.Log, as the project allows for a missing driver, else with t.Skip).
func TestKernelResolveVRF(t *testing.T) {
	lab := newKernelLab(t)
	h := lab.ns.Handle()
	vrf := &netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: "vrf-blue"}, Table: policyTable}
	if err := h.LinkAdd(vrf); err != nil {
		missingDriver(t, "vrf", err)
		return
	}
	if err := lab.ns.SetUp("vrf-blue"); err != nil {
		t.Fatal(err)
	}
	if err := lab.ns.SetMaster("k0", "vrf-blue"); err != nil {
		t.Fatal(err)
	}
	// Enslaving moved k0's connected routes into table 10; the main
	// table keeps none for 198.18.0.0/24.
	resolveLikeKernel(t, lab, netip.MustParseAddr("198.18.0.9"), "k0", netip.MustParseAddr("198.18.0.1"))
}

// missingDriver ends a test that could not build its topology because
// the kernel lacks driver (err from creating the link): under CI=true it
// logs that the test could not run and lets it pass, the one exception
// the project makes to "no skip in CI"; elsewhere it skips.
func missingDriver(t *testing.T, driver string, err error) {
	t.Helper()
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOENT) {
		t.Fatalf("create %s link: %v", driver, err)
	}
	msg := "could not run: this kernel has no " + driver + " driver (" + err.Error() + ")"
	if os.Getenv("CI") == "true" {
		t.Log(msg)
		return
	}
	t.Skip(msg)
}
