package main

import (
	"context"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// shapedPrefix is the prober's address in the cases that differ only in
// the interface that carries it (buildShaped).
var shapedPrefix = netip.MustParsePrefix("198.18.12.1/24")

// An ifaceMaker turns the prober's lan0 (holding prefix) into a topology
// and returns the interface that now carries the address.
type ifaceMaker func(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error)

// buildShaped returns the build of a case on 198.18.12.0/24 whose prober
// carries its address on the interface mk makes; onHost, if not nil, is
// run on each host after it is added. Seeds and truth are threePeers':
// verify with the peers named, then repair --delete-dead of the whole
// table.
func buildShaped(mk ifaceMaker, onHost func(context.Context, *netns.Host) error) func(context.Context) (*topo, error) {
	return func(ctx context.Context) (*topo, error) {
		return buildOn(ctx, func(lan *netns.LAN, t *topo) error {
			for _, h := range lan.Hosts {
				if onHost != nil {
					if err := onHost(ctx, h); err != nil {
						return err
					}
				}
			}
			iface, err := mk(ctx, lan, shapedPrefix)
			if err != nil {
				return err
			}
			seeds, verify, repair := threePeers(iface, "198.18.12")
			t.seeds = seeds
			t.commands = []command{
				{args: []string{"verify", "198.18.12.2", "198.18.12.3", "198.18.12.4"}, wants: verify},
				{args: []string{"repair", "--delete-dead"}, wants: repair},
			}
			return nil
		}, shapedPrefix.String(), "198.18.12.2", "198.18.12.3")
	}
}

// moveToBridge makes br0 with lan0 as its port and moves the address to
// br0.
func moveToBridge(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error) {
	return "br0", moveToBridgeNamed(ctx, lan, "br0")
}

// moveToBridgeNamed makes bridge br in the prober, enslaves lan0 and
// moves lan0's address to br.
func moveToBridgeNamed(ctx context.Context, lan *netns.LAN, br string) error {
	p := lan.Prober
	return steps(
		func() error { return p.Bridge(br) },
		func() error { return p.SetMaster(netns.LANIface, br) },
		func() error { return moveAddr(ctx, p, lan.Prefix, netns.LANIface, br) },
	)
}

// moveToMacvlan makes macvlan mv0 on lan0 and moves the address to it.
func moveToMacvlan(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error) {
	p := lan.Prober
	return "mv0", steps(
		func() error { return p.Macvlan(netns.LANIface, "mv0") },
		func() error { return p.SetMAC("mv0", net.HardwareAddr{0x02, 0, 0, 0, 0xcc, 1}) },
		func() error { return moveAddr(ctx, p, prefix, netns.LANIface, "mv0") },
	)
}

// enslaveToVRF makes VRF vrf-blue with table 10 and enslaves lan0, which
// keeps the address; its connected route moves to table 10.
func enslaveToVRF(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error) {
	p := lan.Prober
	vrf := &netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: "vrf-blue"}, Table: 10}
	return netns.LANIface, steps(
		func() error { return addLink(p, vrf, "vrf") },
		func() error { return p.SetUp("vrf-blue") },
		func() error { return p.SetMaster(netns.LANIface, "vrf-blue") },
		func() error { return p.WaitUp(ctx, netns.LANIface) },
	)
}

// moveToBond makes bond0 (active-backup) with lan0 as its slave and moves
// the address to it.
func moveToBond(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error) {
	p := lan.Prober
	bond := netlink.NewLinkBond(netlink.LinkAttrs{Name: "bond0"})
	bond.Mode = netlink.BOND_MODE_ACTIVE_BACKUP
	return "bond0", steps(
		func() error { return addLink(p, bond, "bond") },
		func() error { return delAddr(p, netns.LANIface, prefix) },
		func() error { return p.SetDown(netns.LANIface) }, // a bond takes only slaves that are down
		func() error { return p.SetMaster(netns.LANIface, "bond0") },
		func() error { return p.SetUp(netns.LANIface) },
		func() error { return p.AddAddr("bond0", prefix) },
		func() error { return p.SetUp("bond0") },
		func() error { return p.WaitUp(ctx, "bond0") },
	)
}

// vlanOn makes VLAN 10 on parent in ns, named parent.10.
func vlanOn(ns *netns.NS, parent string) (string, error) {
	idx, err := ns.LinkIndex(parent)
	if err != nil {
		return "", err
	}
	name := parent + ".10"
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: idx}, VlanId: 10}
	return name, addLink(ns, v, "8021q (VLAN)")
}

// moveToVLAN makes lan0.10 and moves the address to it.
func moveToVLAN(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error) {
	name, err := vlanOn(lan.Prober, netns.LANIface)
	if err != nil {
		return "", err
	}
	return name, moveAddr(ctx, lan.Prober, prefix, netns.LANIface, name)
}

// hostOnVLAN moves a host's address to eth0.10, so that it answers only
// tagged frames of VLAN 10.
func hostOnVLAN(ctx context.Context, h *netns.Host) error {
	name, err := vlanOn(h.NS, netns.HostIface)
	if err != nil {
		return err
	}
	return moveAddr(ctx, h.NS, netip.PrefixFrom(h.Addr, shapedPrefix.Bits()), netns.HostIface, name)
}

// moveToIPVlan makes ipvlan ipvl0 (L2 mode) on lan0 and moves the
// address to it.
func moveToIPVlan(ctx context.Context, lan *netns.LAN, prefix netip.Prefix) (string, error) {
	p := lan.Prober
	idx, err := p.LinkIndex(netns.LANIface)
	if err != nil {
		return "", err
	}
	l := &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: "ipvl0", ParentIndex: idx}, Mode: netlink.IPVLAN_MODE_L2}
	return "ipvl0", steps(
		func() error { return addLink(p, l, "ipvlan") },
		func() error { return moveAddr(ctx, p, prefix, netns.LANIface, "ipvl0") },
	)
}
