package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// The LAN of one run (netns.LAN): the prober, the old owner of the address
// and its new owner, each in a namespace of its own behind a bridge, so
// each has its own ARP stack and answers exactly as a separate machine.
//
//	Prober              Switch            old owner (host 1)
//	lan0 ──── veth ──── p0 ─┐          ┌─ eth0 198.18.0.2, 02:00:00:00:00:01, TCP :80 says "old"
//	198.18.0.1/24           br0 ─ h1 ──┘
//	                        └──── h2 ──── eth0 02:00:00:00:00:02, TCP :80 says "new"
//	                                      new owner (host 2): 198.18.0.2 only from t0
var (
	lanPrefix = netip.MustParsePrefix("198.18.0.1/24")
	// movedAddr is the address that moves from the old owner to the new.
	movedAddr = netip.MustParseAddr("198.18.0.2")
	port      = uint16(80)
	// proberAddr is the prober's address, where the rows in which the new
	// owner speaks first find a TCP server (proberPort).
	proberAddr = lanPrefix.Addr()
	proberPort = uint16(81)
)

// The banners the owners' TCP servers send, so a client knows which one
// it reached.
const (
	bannerOld    = "old"
	bannerNew    = "new"
	bannerProber = "prober"
)

// lab is one run's network.
type lab struct {
	lan            *netns.LAN
	old, new       *netns.Host
	oldMAC, newMAC net.HardwareAddr

	listeners []net.Listener
	serving   sync.WaitGroup
	// garp is a packet socket on the new owner's interface, opened in
	// advance so that the announcement at t0 costs one write.
	garp    *packet.Conn
	garpIfi *net.Interface
}

// buildLab builds the LAN: both owners plugged in, the address on the old
// owner only, a TCP server on each, and the prober's cache empty. On
// error nothing is left behind; otherwise the caller must Close the lab.
func buildLab(ctx context.Context) (*lab, error) {
	lan, err := netns.NewLAN(ctx, lanPrefix)
	if err != nil {
		return nil, err
	}
	l := &lab{lan: lan}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("build the lab: %w", err), l.Close())
	}
	return l, nil
}

func (l *lab) build(ctx context.Context) error {
	var err error
	if l.old, err = l.lan.AddHost(ctx, movedAddr); err != nil {
		return err
	}
	if l.new, err = l.lan.AddHost(ctx, movedAddr); err != nil {
		return err
	}
	// The new owner gets the address only at t0. Nothing has asked for
	// it yet, so nobody has seen it there.
	if err := l.delAddr(l.new); err != nil {
		return err
	}
	if l.oldMAC, err = l.old.MAC(); err != nil {
		return err
	}
	if l.newMAC, err = l.new.MAC(); err != nil {
		return err
	}
	if err := l.serve(l.old.NS, netip.AddrPortFrom(movedAddr, port).String(), bannerOld); err != nil {
		return err
	}
	// Any address, so the server answers once the address arrives.
	if err := l.serve(l.new.NS, fmt.Sprintf(":%d", port), bannerNew); err != nil {
		return err
	}
	return l.new.NS.Do(func() (err error) {
		if l.garpIfi, err = net.InterfaceByName(netns.HostIface); err != nil {
			return err
		}
		l.garp, err = packet.Listen(l.garpIfi, packet.Raw, unix.ETH_P_ARP, nil)
		return err
	})
}

// listenFirst prepares the rows where the new owner speaks first: a TCP
// server on the prober, and on the new owner a static entry for the
// prober, so that it never asks for the prober's MAC (an ARP request the
// prober would see), and arp_notify off (Linux's default, set all the
// same), so that it announces nothing; the lab sends no announcement in
// these rows.
func (l *lab) listenFirst() error {
	if err := l.serve(l.lan.Prober, netip.AddrPortFrom(proberAddr, proberPort).String(), bannerProber); err != nil {
		return err
	}
	if err := l.new.NS.Sysctl("net/ipv4/conf/"+netns.HostIface+"/arp_notify", "0"); err != nil {
		return err
	}
	mac, err := l.lan.Prober.LinkMAC(netns.LANIface)
	if err != nil {
		return err
	}
	return l.new.NS.AddNeigh(netns.HostIface, proberAddr, mac, netlink.NUD_PERMANENT, 0)
}

// speak connects from the new owner to the prober's server once, with
// the kernel retrying its SYN, until it reads the banner or limit passes,
// and returns when it read it (zero: never).
func (l *lab) speak(ctx context.Context, limit time.Duration) time.Time {
	var done time.Time
	l.new.NS.Do(func() error {
		d := net.Dialer{Timeout: limit}
		c, err := d.DialContext(ctx, "tcp4", netip.AddrPortFrom(proberAddr, proberPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, len(bannerProber))
		if _, err := io.ReadFull(c, b); err != nil || string(b) != bannerProber {
			return fmt.Errorf("banner %q: %v", b, err)
		}
		done = time.Now()
		return nil
	})
	return done
}

// delAddr removes movedAddr from h's interface.
func (l *lab) delAddr(h *netns.Host) error {
	nl := h.NS.Handle()
	link, err := nl.LinkByName(netns.HostIface)
	if err != nil {
		return fmt.Errorf("link %s: %w", netns.HostIface, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: movedAddr.AsSlice(), Mask: net.CIDRMask(lanPrefix.Bits(), 32)}}
	if err := nl.AddrDel(link, a); err != nil {
		return fmt.Errorf("delete %s from host %d: %w", movedAddr, h.N, err)
	}
	return nil
}

// serve starts a TCP server in ns on addr that sends banner and a newline
// on every connection, then closes it.
func (l *lab) serve(ns *netns.NS, addr, banner string) error {
	var ln net.Listener
	err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	l.listeners = append(l.listeners, ln)
	l.serving.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Close
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, banner+"\n")
			c.Close()
		}
	})
	return nil
}

// unplugOld pulls the old owner's cable: from now on nothing it had
// answers, and frames to its MAC go nowhere.
func (l *lab) unplugOld() error { return l.lan.Switch.SetDown(l.old.Port) }

// takeAddress gives the address to the new owner, silently: adding an
// IPv4 address sends no frame.
func (l *lab) takeAddress() error {
	return l.new.NS.AddAddr(netns.HostIface, netip.PrefixFrom(movedAddr, lanPrefix.Bits()))
}

// announce sends the gratuitous ARP that Linux sends for an address when
// a link comes up with arp_notify set (arp_send in inetdev_event): a
// broadcast request from the new owner for its own address.
func (l *lab) announce() error {
	//	Ethernet: dst ff:ff:ff:ff:ff:ff | src new MAC | type 0x0806
	//	ARP:      htype 1 | ptype 0x0800 | hlen 6 | plen 4 | op 1 (request)
	//	          sha new MAC | spa 198.18.0.2 | tha 00:00:00:00:00:00 | tpa 198.18.0.2
	f := make([]byte, 0, 42)
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ip := movedAddr.As4()
	f = append(f, bcast...)
	f = append(f, l.newMAC...)
	f = append(f, 0x08, 0x06)
	f = append(f, 0, 1, 0x08, 0x00, 6, 4, 0, 1)
	f = append(f, l.newMAC...)
	f = append(f, ip[:]...)
	f = append(f, make([]byte, 6)...)
	f = append(f, ip[:]...)
	if _, err := l.garp.WriteTo(f, &packet.Addr{HardwareAddr: bcast}); err != nil {
		return fmt.Errorf("send the gratuitous ARP: %w", err)
	}
	return nil
}

// Close stops the servers and closes the packet socket and every
// namespace; the kernel then removes them with their links. Processes
// started in the prober's namespace must have ended first, or they keep
// it alive until they do.
func (l *lab) Close() error {
	for _, ln := range l.listeners {
		ln.Close()
	}
	l.serving.Wait()
	var errs []error
	if l.garp != nil {
		errs = append(errs, l.garp.Close())
	}
	return errors.Join(append(errs, l.lan.Close())...)
}
