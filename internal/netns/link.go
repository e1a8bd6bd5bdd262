package netns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The link helpers below each cost one or two netlink round trips on the
// namespace's handle. Links are created down; SetUp brings them up.

// Veth creates a veth pair: aName inside a and its peer bName inside b
// (a and b may be the same namespace). Both ends are created in place, so
// neither ever exists in the caller's namespace.
func Veth(a *NS, aName string, b *NS, bName string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName}
	if a != b {
		v.PeerNamespace = netlink.NsFd(b.fd)
	}
	if err := a.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("netns: add veth %s in %s, peer %s in %s: %w", aName, a, bName, b, err)
	}
	return nil
}

// Bridge creates a bridge named name, with STP off: a port forwards as
// soon as it is up.
func (ns *NS) Bridge(name string) error {
	if err := ns.nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("netns: add bridge %s: %w", name, err)
	}
	return nil
}

// SetMaster makes link a port of bridge.
func (ns *NS) SetMaster(link, bridge string) error {
	l, err := ns.link(link)
	if err != nil {
		return err
	}
	br, err := ns.link(bridge)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("netns: add %s to bridge %s: %w", link, bridge, err)
	}
	return nil
}

// Macvlan creates a macvlan named name on parent in private mode: it talks
// to the outside through parent but not to the parent's other macvlans,
// so each macvlan behaves as a separate host with its own MAC.
func (ns *NS) Macvlan(parent, name string) error {
	p, err := ns.link(parent)
	if err != nil {
		return err
	}
	m := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index},
		Mode:      netlink.MACVLAN_MODE_PRIVATE,
	}
	if err := ns.nl.LinkAdd(m); err != nil {
		return fmt.Errorf("netns: add macvlan %s on %s: %w", name, parent, err)
	}
	return nil
}

// AddAddr adds an address with its prefix length, such as 198.18.0.1/24,
// to link. Once the link is up the kernel adds the connected route.
func (ns *NS) AddAddr(link string, prefix netip.Prefix) error {
	l, err := ns.link(link)
	if err != nil {
		return err
	}
	a := prefix.Addr()
	ipn := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(prefix.Bits(), a.BitLen())}
	if err := ns.nl.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("netns: add address %s to %s: %w", prefix, link, err)
	}
	return nil
}

// AddRoute adds a route to dst through link in the main table: via gw, or
// directly connected when gw is the zero Addr.
func (ns *NS) AddRoute(dst netip.Prefix, link string, gw netip.Addr) error {
	l, err := ns.link(link)
	if err != nil {
		return err
	}
	dst = dst.Masked()
	r := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
	}
	if gw.IsValid() {
		r.Gw = gw.AsSlice()
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := ns.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("netns: add route %s dev %s via %s: %w", dst, link, gw, err)
	}
	return nil
}

// SetUp brings link up.
func (ns *NS) SetUp(link string) error {
	l, err := ns.link(link)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("netns: set %s up: %w", link, err)
	}
	return nil
}

// SetDown brings link down; the kernel then flushes its ordinary
// neighbour entries and its connected routes.
func (ns *NS) SetDown(link string) error {
	l, err := ns.link(link)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetDown(l); err != nil {
		return fmt.Errorf("netns: set %s down: %w", link, err)
	}
	return nil
}

// WaitUp waits until link is up and running: administratively up, with
// carrier, and processed by the kernel's link watcher, which attaches
// the link's queueing discipline and enables a bridge port. Until then
// frames sent on the link, or through a bridge port, are dropped, which
// is what happens in the first milliseconds after SetUp. It polls the
// link every few milliseconds until ctx is done.
func (ns *NS) WaitUp(ctx context.Context, link string) error {
	const running = unix.IFF_UP | unix.IFF_RUNNING
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		l, err := ns.link(link)
		if err != nil {
			return err
		}
		if l.Attrs().RawFlags&running == running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns: wait for %s to run (%s): %w", link, l.Attrs().OperState, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// DeleteLink deletes the link called name (both ends, for a veth).
func (ns *NS) DeleteLink(name string) error {
	l, err := ns.link(name)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkDel(l); err != nil {
		return fmt.Errorf("netns: delete %s: %w", name, err)
	}
	return nil
}

// LinkIndex returns the interface index of link.
func (ns *NS) LinkIndex(link string) (int, error) {
	l, err := ns.link(link)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// LinkMAC returns the hardware address of link.
func (ns *NS) LinkMAC(link string) (net.HardwareAddr, error) {
	l, err := ns.link(link)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// SetMAC changes the hardware address of link, as a host whose network
// card was replaced. A veth accepts the change while it is up.
func (ns *NS) SetMAC(link string, mac net.HardwareAddr) error {
	l, err := ns.link(link)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("netns: set %s address %s: %w", link, mac, err)
	}
	return nil
}

// link looks a link up by name.
func (ns *NS) link(name string) (netlink.Link, error) {
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("netns: link %s in %s: %w", name, ns, err)
	}
	return l, nil
}
