package arpprobe

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// TestLANProxyARPDefaults: a Linux router on the LAN answers, by proxy
// ARP, for addresses it routes elsewhere, after a random delay of up to
// proxy_delay (0.8 s, the kernel's default) for a broadcast request. At
// the default options the prober waits long enough after its broadcast
// to hear it: an entry whose cached MAC is gone is stale with the router
// as owner (not dead), an address only the router answers and nobody
// cached is uncached, and a host and the router both answering for one
// address is a conflict (not stale).
func TestLANProxyARPDefaults(t *testing.T) {
	var (
		router    = netip.MustParseAddr("198.18.0.9")
		proxied   = netip.MustParseAddr("198.18.0.77") // cached with a gone MAC; only the router answers
		uncached  = netip.MustParseAddr("198.18.0.78") // not cached; only the router answers
		contested = netip.MustParseAddr("198.18.0.79") // a host has it, and the router answers too
		gone      = net.HardwareAddr{0x02, 0xde, 0xad, 0, 0, 7}
	)
	lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), router, contested)
	r := lan.Hosts[0].NS
	// The router: forwarding on, proxy_arp on its LAN port at the default
	// proxy_delay, and host routes for the proxied addresses out of
	// another link, as if they lived behind it.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(netns.Veth(r, "up0", r, "up1"))
	must(r.SetUp("up0"))
	must(r.SetUp("up1"))
	must(r.WaitUp(t.Context(), "up0"))
	for _, a := range []netip.Addr{proxied, uncached, contested} {
		must(r.AddRoute(netip.PrefixFrom(a, 32), "up0", netip.Addr{}))
	}
	must(r.Sysctl("net/ipv4/conf/all/forwarding", "1"))
	must(r.Sysctl("net/ipv4/conf/"+netns.HostIface+"/proxy_arp", "1"))
	must(r.Sysctl("net/ipv4/neigh/"+netns.HostIface+"/proxy_delay", "80"))
	routerMAC, err := lan.Hosts[0].MAC()
	must(err)
	hostMAC, err := lan.Hosts[1].MAC()
	must(err)
	for _, a := range []netip.Addr{proxied, contested} {
		must(lan.Prober.AddNeigh(netns.LANIface, a, gone, netlink.NUD_STALE, 0))
	}

	hl := &hostileLAN{LAN: lan}
	rep, err := hl.check(t, t.Context(), ProberConfig{},
		[]string{proxied.String(), uncached.String(), contested.String()}, Options{})
	must(err)
	want := map[netip.Addr]struct {
		v     Verdict
		owner net.HardwareAddr
		macs  []net.HardwareAddr
	}{
		proxied:   {VerdictStale, routerMAC, []net.HardwareAddr{routerMAC}},
		uncached:  {VerdictUncached, routerMAC, []net.HardwareAddr{routerMAC}},
		contested: {VerdictConflict, nil, []net.HardwareAddr{hostMAC, routerMAC}},
	}
	for _, p := range rep.Peers {
		w := want[p.IP]
		var macs []string
		for _, r := range p.Replies {
			macs = append(macs, r.MAC.String())
		}
		var wantMACs []string
		for _, m := range w.macs {
			wantMACs = append(wantMACs, m.String())
		}
		if p.Verdict != w.v || p.Owner.String() != w.owner.String() || !sameSet(macs, wantMACs) {
			t.Errorf("%s: %s owner %q, replies from %v (reason %q); want %s owner %q, replies from %v",
				p.IP, p.Verdict, p.Owner, macs, p.Reason, w.v, w.owner, wantMACs)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		if m[s] == 0 {
			return false
		}
		m[s]--
	}
	return true
}
