package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// cases are the lab's topologies, in the order of issue 11: first the
// six it found wrong, then those it found right (regression rows), then
// those that need a driver this kind of kernel may lack.
var cases = []topoCase{
	{"multinic", "two NICs on one subnet (lan0 .2, lan1 .3); lan1 caches a wrong MAC; peer named", buildMultiNIC},
	{"policy", "address noprefixroute on lan0, connected route only in table 10, `ip rule to 198.18.7.0/24 lookup 10`", buildPolicy},
	{"proxyarp", "a Linux router with proxy_arp answers for .77–.79 at its proxy_delay; a host also has .79", buildProxyARP},
	{"bridgeport", "lan0 enslaved to br0, IPv4 on br0; an entry on the port lan0 for a live host", buildBridgePort},
	{"ownaddr", "a PERMANENT entry for the prober's own address .1 with its own MAC", buildOwnAddr},
	{"externlearn", "an extern_learn entry with a MAC gone from the LAN; its owner answers", buildExternLearn},
	{"bridge", "IPv4 on br0, lan0 its port; entries on br0 (regression)", buildShaped(moveToBridge, nil)},
	{"macvlan", "IPv4 on a macvlan mv0 of lan0; entries on mv0 (regression)", buildShaped(moveToMacvlan, nil)},
	{"secondary", "lan0 with 198.18.14.1/24 and 198.18.15.1/24, hosts in both subnets (regression)", buildSecondary},
	{"onlink32", "lan0 198.18.16.5/32, route to the gateway .16.1 scope link, 198.18.17.0/24 via it onlink (regression)", buildOnlink32},
	{"vrf", "lan0 enslaved to VRF vrf-blue (table 10); peers named", buildShaped(enslaveToVRF, nil)},
	{"bond", "IPv4 on bond0 (active-backup), lan0 its slave", buildShaped(moveToBond, nil)},
	{"vlan", "IPv4 on VLAN lan0.10, the hosts on eth0.10", buildShaped(moveToVLAN, hostOnVLAN)},
	{"ipvlan", "IPv4 on ipvlan ipvl0 (L2) of lan0", buildShaped(moveToIPVlan, nil)},
	{"dummy", "a NOARP dummy0 with an address and a PERMANENT entry, beside lan0 with a live host", buildDummy},
}

// caseNames returns the names -cases accepts.
func caseNames() []string {
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	return names
}

// selectCases returns the cases named, in the lab's order; all of them
// when names is empty.
func selectCases(names []string) ([]topoCase, error) {
	if len(names) == 0 {
		return cases, nil
	}
	var out []topoCase
	for _, n := range names {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(cases, func(c topoCase) bool { return c.name == n })
		if i < 0 {
			return nil, fmt.Errorf("-cases: no case %q (cases: %s)", n, strings.Join(caseNames(), ","))
		}
		out = append(out, cases[i])
	}
	slices.SortStableFunc(out, func(a, b topoCase) int {
		return slices.IndexFunc(cases, func(c topoCase) bool { return c.name == a.name }) -
			slices.IndexFunc(cases, func(c topoCase) bool { return c.name == b.name })
	})
	return slices.CompactFunc(out, func(a, b topoCase) bool { return a.name == b.name }), nil
}

// w is a want of a verdict for ip on iface; after kept.
func w(iface, ip string, verdicts ...string) want {
	return want{key: key{Iface: iface, IP: netip.MustParseAddr(ip)}, verdicts: verdicts}
}

// then returns the want with what must become of the entry.
func (x want) then(a afterKind, mac net.HardwareAddr) want {
	x.after, x.mac = a, mac
	return x
}

// because returns the want with a note for the table.
func (x want) because(note string) want {
	x.note = note
	return x
}

// stale seeds a STALE entry for ip on link.
func stale(link, ip string, mac net.HardwareAddr) seed {
	return seed{link: link, ip: netip.MustParseAddr(ip), mac: mac, state: netlink.NUD_STALE}
}

// Case 1: two interfaces on one subnet, the peer named. Its route picks
// lan0, where the entry is right; lan1 caches a MAC gone from the LAN.
func buildMultiNIC(ctx context.Context) (*topo, error) {
	lan1MAC := net.HardwareAddr{0x02, 0, 0, 0, 0xaa, 1}
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		p, sw := lan.Prober, lan.Switch
		owner := netns.HostMAC(1)
		t.seeds = []seed{stale("lan0", "198.18.6.14", owner), stale("lan1", "198.18.6.14", gone)}
		t.commands = []command{
			{args: []string{"verify", "198.18.6.14"}, wants: []want{
				w("lan0", "198.18.6.14", "ok"),
				w("lan1", "198.18.6.14", "stale").because("owner " + owner.String()),
			}},
			{args: []string{"repair", "198.18.6.14"}, wants: []want{
				w("lan0", "198.18.6.14", "ok"),
				w("lan1", "198.18.6.14", "stale").then(replaced, owner),
			}},
		}
		return steps(
			func() error { return netns.Veth(p, "lan1", sw, "p1") },
			func() error { return sw.SetMaster("p1", netns.SwitchBridge) },
			func() error { return sw.SetUp("p1") },
			func() error { return p.SetMAC("lan1", lan1MAC) },
			func() error { return p.AddAddr("lan1", netip.MustParsePrefix("198.18.6.3/24")) },
			func() error { return p.SetUp("lan1") },
			func() error { return sw.WaitUp(ctx, "p1") },
			func() error { return p.WaitUp(ctx, "lan1") },
		)
	}, "198.18.6.2/24", "198.18.6.14")
}

// threePeers seeds on iface, for hosts .2 and .3 of subnet (198.18.N):
// .2 its owner's MAC (ok), .3 a MAC gone from the LAN (stale: host 2
// owns it), .4 a gone MAC and nobody there (dead). It returns the
// seeds and the wants of verify, and of a repair that deletes dead
// entries.
func threePeers(iface, subnet string) (seeds []seed, verify, repairDead []want) {
	a, b, c := subnet+".2", subnet+".3", subnet+".4"
	seeds = []seed{stale(iface, a, netns.HostMAC(1)), stale(iface, b, gone), stale(iface, c, gone)}
	verify = []want{
		w(iface, a, "ok"),
		w(iface, b, "stale").because("owner " + netns.HostMAC(2).String()),
		w(iface, c, "dead"),
	}
	repairDead = []want{
		w(iface, a, "ok"),
		w(iface, b, "stale").then(replaced, netns.HostMAC(2)),
		w(iface, c, "dead").then(deleted, nil),
	}
	return seeds, verify, repairDead
}

// Case 2: policy routing. The connected route is only in table 10,
// which a rule chooses; the peers are named.
func buildPolicy(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		p := lan.Prober
		addr := netip.MustParsePrefix("198.18.7.1/24")
		seeds, verify, _ := threePeers("lan0", "198.18.7")
		peers := []string{"198.18.7.2", "198.18.7.3", "198.18.7.4"}
		repair := []want{verify[0], verify[1].then(replaced, netns.HostMAC(2)), verify[2]}
		t.seeds = seeds
		t.commands = []command{
			{args: append([]string{"verify"}, peers...), wants: verify},
			{args: append([]string{"repair"}, peers...), wants: repair},
		}
		if err := delAddr(p, "lan0", addr); err != nil {
			return err
		}
		h := p.Handle()
		l, err := h.LinkByName("lan0")
		if err != nil {
			return err
		}
		subnet := &net.IPNet{IP: addr.Masked().Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: subnet.Mask}, Flags: unix.IFA_F_NOPREFIXROUTE}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s noprefixroute: %w", addr, err)
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: subnet, Table: 10, Scope: netlink.SCOPE_LINK, Src: addr.Addr().AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add route %s table 10: %w", subnet, err)
		}
		rule := netlink.NewRule()
		rule.Family, rule.Dst, rule.Table = netlink.FAMILY_V4, subnet, 10
		if err := h.RuleAdd(rule); err != nil {
			return fmt.Errorf("add rule to %s lookup 10: %w", subnet, err)
		}
		return nil
	}, "198.18.7.1/24", "198.18.7.2", "198.18.7.3")
}

// Case 3: proxy ARP. Host 1 is a router answering for .77, .78 and .79
// (routed out of another link) after its proxy_delay, left at the
// kernel's default; host 2 also has .79.
func buildProxyARP(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		r := lan.Hosts[0].NS
		router, host := netns.HostMAC(1), netns.HostMAC(2)
		t.seeds = []seed{stale("lan0", "198.18.8.77", router), stale("lan0", "198.18.8.79", gone)}
		t.commands = []command{{
			args: []string{"verify", "198.18.8.77", "198.18.8.78", "198.18.8.79"},
			wants: []want{
				w("lan0", "198.18.8.77", "ok").because("only the router answers; its MAC cached"),
				w("lan0", "198.18.8.78", "uncached").because("only the router answers, after its delay; nothing cached"),
				w("lan0", "198.18.8.79", "conflict").because("a host and the router answer; a gone MAC cached"),
			},
		}}
		err := steps(
			func() error { return netns.Veth(r, "up0", r, "up1") },
			func() error { return r.SetUp("up0") },
			func() error { return r.SetUp("up1") },
			func() error { return r.WaitUp(ctx, "up0") },
			func() error { return r.Sysctl("net/ipv4/conf/all/forwarding", "1") },
			func() error { return r.Sysctl("net/ipv4/conf/"+netns.HostIface+"/proxy_arp", "1") },
		)
		if err != nil {
			return err
		}
		for _, a := range []string{"198.18.8.77", "198.18.8.78", "198.18.8.79"} {
			if err := r.AddRoute(netip.PrefixFrom(netip.MustParseAddr(a), 32), "up0", netip.Addr{}); err != nil {
				return err
			}
		}
		delay, err := r.ReadSysctl("net/ipv4/neigh/" + netns.HostIface + "/proxy_delay")
		if err != nil {
			return err
		}
		t.note = fmt.Sprintf("proxy_delay %s jiffies, as the kernel set it; router %s, host %s", delay, router, host)
		return nil
	}, "198.18.8.1/24", "198.18.8.9", "198.18.8.79")
}

// Case 4: an entry on a bridge port. The prober's address is on br0;
// lan0, its port, still holds an entry for a host that answers, and br0
// one for an address nobody has.
func buildBridgePort(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		t.seeds = []seed{stale("lan0", "198.18.9.2", netns.HostMAC(1)), stale("br0", "198.18.9.3", gone)}
		t.commands = []command{
			{args: []string{"verify"}, wants: []want{
				w("lan0", "198.18.9.2", "ok").because("its MAC answers"),
				w("br0", "198.18.9.3", "dead"),
			}},
			{args: []string{"repair", "--delete-dead"}, wants: []want{
				w("lan0", "198.18.9.2", "ok").because("its MAC answers"),
				w("br0", "198.18.9.3", "dead").then(deleted, nil),
			}},
		}
		return moveToBridgeNamed(ctx, lan, "br0")
	}, "198.18.9.1/24", "198.18.9.2")
}

// Case 5: a PERMANENT entry for the prober's own address, with its own
// MAC: right, whatever else arpcheck says of it.
func buildOwnAddr(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		own := netns.HostMAC(0)
		t.seeds = []seed{
			{link: "lan0", ip: netip.MustParseAddr("198.18.10.1"), mac: own, state: netlink.NUD_PERMANENT},
			stale("lan0", "198.18.10.2", netns.HostMAC(1)),
			stale("lan0", "198.18.10.3", gone),
		}
		self := w("lan0", "198.18.10.1", "ok", "offlink").because("this host's address and MAC")
		t.commands = []command{
			{args: []string{"verify"}, wants: []want{self, w("lan0", "198.18.10.2", "ok"), w("lan0", "198.18.10.3", "dead")}},
			{args: []string{"repair", "--include-permanent", "--delete-dead"}, wants: []want{
				self, w("lan0", "198.18.10.2", "ok"), w("lan0", "198.18.10.3", "dead").then(deleted, nil),
			}},
		}
		return nil
	}, "198.18.10.1/24", "198.18.10.2")
}

// Case 6: an extern_learn entry (a control plane's) with a MAC gone from
// the LAN: refused without --include-extern-learn, corrected with it.
func buildExternLearn(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		owner := netns.HostMAC(1)
		s := stale("lan0", "198.18.11.2", gone)
		s.flags = netlink.NTF_EXT_LEARNED
		t.seeds = []seed{s}
		t.commands = []command{
			{args: []string{"verify", "198.18.11.2"}, wants: []want{w("lan0", "198.18.11.2", "stale").because("owner " + owner.String())}},
			{args: []string{"repair", "198.18.11.2"}, wants: []want{w("lan0", "198.18.11.2", "stale").because("refused: a control plane owns it")}},
			{args: []string{"repair", "--include-extern-learn", "198.18.11.2"}, wants: []want{
				w("lan0", "198.18.11.2", "stale").then(replaced, owner).because("keeps extern_learn"),
			}},
		}
		return nil
	}, "198.18.11.1/24", "198.18.11.2")
}

// Regression: addresses of two subnets on one NIC; each must be asked
// from its own subnet's address, or its host does not answer.
func buildSecondary(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		t.seeds = []seed{
			stale("lan0", "198.18.14.2", netns.HostMAC(1)),
			stale("lan0", "198.18.15.2", gone),
			stale("lan0", "198.18.15.3", gone),
		}
		peers := []string{"198.18.14.2", "198.18.15.2", "198.18.15.3"}
		t.commands = []command{
			{args: append([]string{"verify"}, peers...), wants: []want{
				w("lan0", "198.18.14.2", "ok"),
				w("lan0", "198.18.15.2", "stale").because("owner " + netns.HostMAC(2).String()),
				w("lan0", "198.18.15.3", "dead"),
			}},
			{args: append([]string{"repair", "--delete-dead"}, peers...), wants: []want{
				w("lan0", "198.18.14.2", "ok"),
				w("lan0", "198.18.15.2", "stale").then(replaced, netns.HostMAC(2)),
				w("lan0", "198.18.15.3", "dead").then(deleted, nil),
			}},
		}
		return lan.Prober.AddAddr("lan0", netip.MustParsePrefix("198.18.15.1/24"))
	}, "198.18.14.1/24", "198.18.14.2", "198.18.15.2")
}

// Regression: a /32 address with the gateway reached by a scope-link
// route and a subnet routed via it onlink, as cloud images set it up.
func buildOnlink32(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		p := lan.Prober
		gw := netns.HostMAC(1)
		t.seeds = []seed{stale("lan0", "198.18.16.1", gone)}
		t.commands = []command{
			{args: []string{"verify", "198.18.16.1", "198.18.17.9"}, wants: []want{
				w("lan0", "198.18.16.1", "stale").because("the gateway, owner " + gw.String()),
				w("", "198.18.17.9", "offlink"),
			}},
			{args: []string{"repair", "198.18.16.1", "198.18.17.9"}, wants: []want{
				w("lan0", "198.18.16.1", "stale").then(replaced, gw),
				w("", "198.18.17.9", "offlink"),
			}},
		}
		err := steps(
			func() error { return delAddr(p, "lan0", netip.MustParsePrefix("198.18.16.5/24")) },
			func() error { return p.AddAddr("lan0", netip.MustParsePrefix("198.18.16.5/32")) },
			func() error {
				return p.AddRoute(netip.MustParsePrefix("198.18.16.1/32"), "lan0", netip.Addr{})
			},
		)
		if err != nil {
			return err
		}
		h := p.Handle()
		l, err := h.LinkByName("lan0")
		if err != nil {
			return err
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(198, 18, 17, 0).To4(), Mask: net.CIDRMask(24, 32)},
			Gw: net.IPv4(198, 18, 16, 1).To4(), Flags: int(netlink.FLAG_ONLINK)}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add route 198.18.17.0/24 via 198.18.16.1 onlink: %w", err)
		}
		return nil
	}, "198.18.16.5/24", "198.18.16.1")
}

// A NOARP interface (dummy): its entry is not arpcheck's to check or
// touch, even with --include-permanent.
func buildDummy(ctx context.Context) (*topo, error) {
	return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
		p := lan.Prober
		t.seeds = []seed{
			stale("lan0", "198.18.24.2", netns.HostMAC(1)),
			{link: "dummy0", ip: netip.MustParseAddr("198.18.25.2"), mac: gone, state: netlink.NUD_PERMANENT},
		}
		skip := w("dummy0", "198.18.25.2").because("a NOARP interface")
		t.commands = []command{
			{args: []string{"verify"}, wants: []want{w("lan0", "198.18.24.2", "ok"), skip}},
			{args: []string{"repair", "--include-permanent", "--delete-dead"}, wants: []want{w("lan0", "198.18.24.2", "ok"), skip}},
		}
		return steps(
			func() error { return addLink(p, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "dummy0"}}, "dummy") },
			func() error { return p.AddAddr("dummy0", netip.MustParsePrefix("198.18.25.1/24")) },
			func() error { return p.SetUp("dummy0") },
		)
	}, "198.18.24.1/24", "198.18.24.2")
}
