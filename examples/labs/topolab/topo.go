package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// topoCase is one topology of the lab: how to build it, and (in the
// topo it builds) the commands to run on it with their truth.
type topoCase struct {
	name  string // the -cases name
	built string // what is built, for the table
	build func(ctx context.Context) (*topo, error)
}

// topo is a built topology: the prober's namespace, the entries seeded
// into its neighbour table before every run, and the commands to run.
type topo struct {
	prober   *netns.NS
	seeds    []seed
	commands []command
	note     string // added to what was built, for the table
	close    func() error
}

// seed is one neighbour entry of the prober's table.
type seed struct {
	link  string
	ip    netip.Addr
	mac   net.HardwareAddr
	state int // netlink.NUD_*
	flags int // 0 or netlink.NTF_EXT_LEARNED
}

// noDriverError says that a topology needs a link type this kernel has
// no driver for.
type noDriverError struct {
	driver string
	err    error
}

func (e *noDriverError) Error() string {
	return fmt.Sprintf("this kernel has no %s driver (%v)", e.driver, e.err)
}

func (e *noDriverError) Unwrap() error { return e.err }

// addLink creates l in ns; when the kernel does not know its type it
// returns a *noDriverError naming driver.
func addLink(ns *netns.NS, l netlink.Link, driver string) error {
	err := ns.Handle().LinkAdd(l)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
		return &noDriverError{driver: driver, err: err}
	}
	if err != nil {
		return fmt.Errorf("add %s link %s: %w", driver, l.Attrs().Name, err)
	}
	return nil
}

// gone is a MAC no host of any lab has: the old owner of a moved address.
var gone = net.HardwareAddr{0x02, 0xde, 0xad, 0, 0, 1}

// newLAN builds a LAN whose prober has prefix on lan0 (netns.NewLAN) and a
// host for each address. On error nothing is left.
func newLAN(ctx context.Context, prefix string, hosts ...string) (*netns.LAN, error) {
	lan, err := netns.NewLAN(ctx, netip.MustParsePrefix(prefix))
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if _, err := lan.AddHost(ctx, netip.MustParseAddr(h)); err != nil {
			return nil, errors.Join(err, lan.Close())
		}
	}
	return lan, nil
}

// lanTopo is a topo on lan, closed with it.
func lanTopo(lan *netns.LAN) *topo {
	return &topo{prober: lan.Prober, close: lan.Close}
}

// delAddr removes prefix from link in ns (and with it the connected
// route).
func delAddr(ns *netns.NS, link string, prefix netip.Prefix) error {
	h := ns.Handle()
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)}}
	if err := h.AddrDel(l, a); err != nil {
		return fmt.Errorf("delete address %s from %s: %w", prefix, link, err)
	}
	return nil
}

// moveAddr moves prefix from link from to link to, brings to up and
// waits until it runs.
func moveAddr(ctx context.Context, ns *netns.NS, prefix netip.Prefix, from, to string) error {
	return steps(
		func() error { return delAddr(ns, from, prefix) },
		func() error { return ns.AddAddr(to, prefix) },
		func() error { return ns.SetUp(to) },
		func() error { return ns.WaitUp(ctx, to) },
	)
}

// steps runs fns in order and returns the first error.
func steps(fns ...func() error) error {
	for _, f := range fns {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// buildOn builds a topology on a LAN made by newLAN: it runs fn on it and
// closes the LAN when fn fails.
func buildOn(ctx context.Context, fn func(*netns.LAN, *topo) error, prefix string, hosts ...string) (*topo, error) {
	lan, err := newLAN(ctx, prefix, hosts...)
	if err != nil {
		return nil, err
	}
	t := lanTopo(lan)
	if err := fn(lan, t); err != nil {
		return nil, errors.Join(err, lan.Close())
	}
	return t, nil
}
