package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Interface names used by LAN.
const (
	// LANIface is the prober's interface on a LAN, in LAN.Prober.
	LANIface = "lan0"
	// HostIface is each host's interface on a LAN, in Host.NS.
	HostIface = "eth0"
	// SwitchBridge is the bridge in LAN.Switch that joins the ports.
	SwitchBridge = "br0"
)

// LAN is one Ethernet segment built from namespaces: the host under test
// (Prober), a switch (a bridge in its own namespace), and any number of
// hosts, each in a namespace of its own with its own ARP stack, so each
// answers ARP exactly as a separate machine would.
//
//	Prober              Switch                    Host 1
//	lan0 ──── veth ──── p0 ─┐                  ┌─ eth0 198.18.0.2
//	198.18.0.1/24           br0 ─ h1 ── veth ──┘
//	                        │                     Host 2
//	                        └──── h2 ── veth ──── eth0 198.18.0.3
//
// Every link is up and running when NewLAN and AddHost return (see
// NS.WaitUp); they wait for that until their ctx is done. The prober's
// kernel starts with no neighbour entries; seed them with AddNeigh.
//
// Scenarios: hosts may share an address (a conflict); Host.SetMAC changes
// a host's MAC (a replaced machine, stale entries elsewhere);
// Switch.SetDown(h.Port) unplugs a host, which then answers nothing (a
// dead peer); a host's NS can hold further links and addresses.
//
// Cost: a namespace and a veth pair per host, created in a few
// milliseconds; keep a LAN to tens of hosts. For thousands of peers use
// one namespace with a macvlan (NS.Macvlan) per peer instead.
type LAN struct {
	Prober *NS
	Switch *NS
	// Prefix is the prober's address with the subnet's length, such as
	// 198.18.0.1/24; hosts get their addresses with the same length.
	Prefix netip.Prefix
	// Hosts are the hosts in the order they were added.
	Hosts []*Host
}

// Host is one machine on a LAN.
type Host struct {
	NS   *NS
	Addr netip.Addr
	// Port is the host's port on the switch ("h1", "h2", ...), a link in
	// LAN.Switch.
	Port string
	// N is the host's number on the LAN, counting from 1.
	N int
}

// HostMAC returns the MAC that host n of a LAN starts with:
// 02:00:00:00:nn:nn, locally administered. The prober is number 0.
func HostMAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, 0, byte(n >> 8), byte(n)}
}

// NewLAN builds the prober and the switch of a LAN, and gives the prober
// the address prefix (such as 198.18.0.1/24) on LANIface, whose MAC is
// HostMAC(0). It needs root. On error nothing is left behind; otherwise the
// caller must Close the LAN.
func NewLAN(ctx context.Context, prefix netip.Prefix) (*LAN, error) {
	if !prefix.Addr().Is4() {
		return nil, fmt.Errorf("netns: build LAN %s: not an IPv4 prefix", prefix)
	}
	l := &LAN{Prefix: prefix}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("netns: build LAN %s: %w", prefix, err), l.Close())
	}
	return l, nil
}

func (l *LAN) build(ctx context.Context) error {
	var err error
	if l.Prober, err = New(); err != nil {
		return err
	}
	if l.Switch, err = New(); err != nil {
		return err
	}
	sw, p := l.Switch, l.Prober
	return firstError(
		func() error { return sw.Bridge(SwitchBridge) },
		func() error { return sw.SetUp(SwitchBridge) },
		func() error { return Veth(p, LANIface, sw, "p0") },
		func() error { return sw.SetMaster("p0", SwitchBridge) },
		func() error { return sw.SetUp("p0") },
		func() error { return p.SetMAC(LANIface, HostMAC(0)) },
		func() error { return p.AddAddr(LANIface, l.Prefix) },
		func() error { return p.SetUp(LANIface) },
		func() error { return sw.WaitUp(ctx, "p0") },
		func() error { return p.WaitUp(ctx, LANIface) },
	)
}

// AddHost adds a host with address addr (given the LAN's prefix length)
// on HostIface, whose MAC is HostMAC(N). It costs a namespace and a veth
// pair. On error the host is not added and nothing of it is left behind.
func (l *LAN) AddHost(ctx context.Context, addr netip.Addr) (*Host, error) {
	if !addr.Is4() {
		return nil, fmt.Errorf("netns: add host %s: not an IPv4 address", addr)
	}
	n := len(l.Hosts) + 1
	ns, err := New()
	if err != nil {
		return nil, err
	}
	h := &Host{NS: ns, Addr: addr, Port: fmt.Sprintf("h%d", n), N: n}
	sw := l.Switch
	err = firstError(
		func() error { return Veth(ns, HostIface, sw, h.Port) },
		func() error { return sw.SetMaster(h.Port, SwitchBridge) },
		func() error { return sw.SetUp(h.Port) },
		func() error { return ns.SetMAC(HostIface, HostMAC(n)) },
		func() error { return ns.AddAddr(HostIface, netip.PrefixFrom(addr, l.Prefix.Bits())) },
		func() error { return ns.SetUp(HostIface) },
		func() error { return sw.WaitUp(ctx, h.Port) },
		func() error { return ns.WaitUp(ctx, HostIface) },
	)
	if err != nil {
		// Closing the host's namespace removes the veth pair with it.
		return nil, errors.Join(fmt.Errorf("netns: add host %s: %w", addr, err), ns.Close())
	}
	l.Hosts = append(l.Hosts, h)
	return h, nil
}

// MAC returns the host's current MAC. It costs one netlink round trip.
func (h *Host) MAC() (net.HardwareAddr, error) { return h.NS.LinkMAC(HostIface) }

// SetMAC gives the host a new MAC, as if its network card were replaced.
// The host does not announce it.
func (h *Host) SetMAC(mac net.HardwareAddr) error { return h.NS.SetMAC(HostIface, mac) }

// Close closes every namespace of the LAN; the kernel then removes them
// with their links. It may be called on a partly built LAN.
func (l *LAN) Close() error {
	var errs []error
	for _, h := range l.Hosts {
		errs = append(errs, h.NS.Close())
	}
	for _, ns := range []*NS{l.Switch, l.Prober} {
		if ns != nil {
			errs = append(errs, ns.Close())
		}
	}
	return errors.Join(errs...)
}

// firstError runs steps in order and returns the first error.
func firstError(steps ...func() error) error {
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}
