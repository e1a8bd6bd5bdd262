package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// The LAN: the client (the host arpcheck runs on) and four peers, each
// peer a namespace of its own behind a bridge (netns.LAN), so each has its
// own ARP stack and answers exactly as a separate machine would.
var (
	lanPrefix = netip.MustParsePrefix("198.18.0.1/24")
	port      = uint16(80)
	// dialTimeout bounds each TCP connect from the client.
	dialTimeout = time.Second
)

// A peer of the scenario: what the client's cache holds for its address,
// and who owns the address now.
type peer struct {
	name  string
	addr  netip.Addr
	story string
	// cached is the MAC in the client's cache, left by the instance that
	// had the address before; cachedState its NUD state.
	cached      net.HardwareAddr
	cachedState int
	// owner is the MAC of the instance that has the address now; nil when
	// nobody has it.
	owner net.HardwareAddr
}

// mac returns 02:00:00:00:00:b, a locally administered MAC. Old instances
// end in 0 and new ones in 1, next to the address: easy to tell apart.
func mac(b byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, b} }

var peers = []peer{
	{name: "web", addr: netip.MustParseAddr("198.18.0.10"), story: "healthy",
		cached: mac(0x10), cachedState: netlink.NUD_STALE, owner: mac(0x10)},
	{name: "app", addr: netip.MustParseAddr("198.18.0.20"), story: "recycled: old instance died, a new one took the address",
		cached: mac(0x20), cachedState: netlink.NUD_STALE, owner: mac(0x21)},
	{name: "db", addr: netip.MustParseAddr("198.18.0.30"), story: "recycled, and the client pinned the old MAC (PERMANENT)",
		cached: mac(0x30), cachedState: netlink.NUD_PERMANENT, owner: mac(0x31)},
	{name: "cache", addr: netip.MustParseAddr("198.18.0.40"), story: "died; nobody took the address",
		cached: mac(0x40), cachedState: netlink.NUD_STALE},
}

// lab is the scenario's network: the LAN, a TCP listener on every live
// peer, and the client's cache as the old instances left it.
type lab struct {
	lan       *netns.LAN
	listeners []net.Listener
	serving   sync.WaitGroup
}

// buildLab builds the LAN with its listeners and seeds the client's cache.
// On error nothing is left behind; otherwise the caller must Close the lab.
func buildLab(ctx context.Context) (*lab, error) {
	lan, err := netns.NewLAN(ctx, lanPrefix)
	if err != nil {
		return nil, err
	}
	l := &lab{lan: lan}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (l *lab) build(ctx context.Context) error {
	for _, p := range peers {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.owner == nil {
			continue // nobody has the address: no host at all
		}
		h, err := l.lan.AddHost(ctx, p.addr)
		if err != nil {
			return err
		}
		if err := h.SetMAC(p.owner); err != nil {
			return err
		}
		if err := l.listen(h.NS, p); err != nil {
			return err
		}
	}
	// The client's cache as the old instances left it. Seeding it sends
	// no frame.
	for _, p := range peers {
		if err := l.lan.Prober.AddNeigh(netns.LANIface, p.addr, p.cached, p.cachedState, 0); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// listen starts a TCP server for p inside ns: it answers every connection
// with one line naming itself, then closes it.
func (l *lab) listen(ns *netns.NS, p peer) error {
	var ln net.Listener
	err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(p.addr, port).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("listen on %s in %s: %w", p.addr, p.name, err)
	}
	l.listeners = append(l.listeners, ln)
	banner := fmt.Sprintf("%s at %s\n", p.name, p.owner)
	l.serving.Add(1)
	go func() {
		defer l.serving.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Close
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, banner)
			c.Close()
		}
	}()
	return nil
}

// dialResult is one TCP connect from the client.
type dialResult struct {
	to     netip.AddrPort
	banner string // what the server said, when the connect worked
	err    error
	took   time.Duration
}

// dialAll connects from the client to every live peer at once, each with
// dialTimeout, and returns the results in the order of peers.
func (l *lab) dialAll(ctx context.Context) []dialResult {
	var targets []netip.AddrPort
	for _, p := range peers {
		if p.owner != nil {
			targets = append(targets, netip.AddrPortFrom(p.addr, port))
		}
	}
	res := make([]dialResult, len(targets))
	var wg sync.WaitGroup
	for i, to := range targets {
		wg.Go(func() { res[i] = l.dial(ctx, to) })
	}
	wg.Wait()
	return res
}

// dial connects from the client's namespace to to and reads the server's
// line. The socket is created inside the namespace, on the thread Do
// locked there; waiting for it needs no particular thread.
func (l *lab) dial(ctx context.Context, to netip.AddrPort) dialResult {
	r := dialResult{to: to}
	start := time.Now()
	r.err = l.lan.Prober.Do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.DialContext(ctx, "tcp4", to.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(dialTimeout))
		b, err := io.ReadAll(io.LimitReader(c, 256))
		r.banner = strings.TrimSpace(string(b))
		return err
	})
	r.took = time.Since(start)
	return r
}

// Close stops the servers and closes every namespace; the kernel then
// removes them with their links. Sockets the caller created in a
// namespace (a Prober's) must be closed first, or they keep it alive
// until the process exits.
func (l *lab) Close() error {
	for _, ln := range l.listeners {
		ln.Close()
	}
	l.serving.Wait()
	return l.lan.Close()
}
