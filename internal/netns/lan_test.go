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

var (
	lanPrefix = netip.MustParsePrefix("198.18.0.1/24")
	proberIP  = lanPrefix.Addr()
	hostIP2   = netip.MustParseAddr("198.18.0.2")
	hostIP3   = netip.MustParseAddr("198.18.0.3")
)

func TestLAN(t *testing.T) {
	// Hosts 2 and 3 share an address: a conflict.
	l := NewLANT(t, lanPrefix, hostIP2, hostIP3, hostIP3)
	if len(l.Hosts) != 3 {
		t.Fatalf("%d hosts; want 3", len(l.Hosts))
	}
	if got, err := l.Prober.LinkMAC(LANIface); err != nil || !bytes.Equal(got, HostMAC(0)) {
		t.Errorf("prober MAC %s, %v; want %s", got, err, HostMAC(0))
	}
	for i, h := range l.Hosts {
		if h.N != i+1 || h.Port != fmt.Sprintf("h%d", i+1) {
			t.Errorf("host %d: N %d, port %s; want %d, h%d", i, h.N, h.Port, i+1, i+1)
		}
		if got, err := h.MAC(); err != nil || !bytes.Equal(got, HostMAC(h.N)) {
			t.Errorf("host %d MAC %s, %v; want %s", h.N, got, err, HostMAC(h.N))
		}
	}

	t.Run("traffic", func(t *testing.T) {
		if src := udpExchange(t, l.Prober, l.Hosts[0].NS, hostIP2); src != proberIP {
			t.Errorf("datagram from %s; want %s", src, proberIP)
		}
		n, err := l.Prober.Neigh(LANIface, hostIP2)
		if err != nil || n == nil || !bytes.Equal(n.HardwareAddr, HostMAC(1)) {
			t.Errorf("prober's entry for %s: %+v, %v; want MAC %s", hostIP2, n, err, HostMAC(1))
		}
	})

	t.Run("conflict", func(t *testing.T) {
		// The prober's kernel asks for hostIP3 by broadcast; both owners
		// receive the request and learn the prober from it.
		sendUDP(t, l.Prober, hostIP3)
		for _, h := range l.Hosts[1:] {
			eventually(t, 5*time.Second, func() error {
				n, err := h.NS.Neigh(HostIface, proberIP)
				if err != nil {
					return err
				}
				if n == nil || !bytes.Equal(n.HardwareAddr, HostMAC(0)) {
					return fmt.Errorf("host %d's entry for the prober: %+v; want MAC %s", h.N, n, HostMAC(0))
				}
				return nil
			})
		}
	})

	t.Run("new MAC", func(t *testing.T) {
		h := l.Hosts[0]
		mac := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x01}
		if err := h.SetMAC(mac); err != nil {
			t.Fatal(err)
		}
		if got, err := h.MAC(); err != nil || !bytes.Equal(got, mac) {
			t.Errorf("MAC after SetMAC %s, %v; want %s", got, err, mac)
		}
	})

	t.Run("unplug", func(t *testing.T) {
		h := l.Hosts[2]
		if err := l.Switch.SetDown(h.Port); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() error {
			link, err := h.NS.Handle().LinkByName(HostIface)
			if err != nil {
				return err
			}
			if st := link.Attrs().OperState; st == netlink.OperUp {
				return fmt.Errorf("host %d's %s is still %s", h.N, HostIface, st)
			}
			return nil
		})
	})
}

func TestLANAddHostFailureLeavesNothing(t *testing.T) {
	Require(t)
	l, err := NewLAN(t.Context(), lanPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	before := OpenFDs(t)

	if _, err := l.AddHost(t.Context(), netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("AddHost accepted an IPv6 address")
	}
	// Without the bridge, AddHost fails after its veth pair exists.
	if err := l.Switch.DeleteLink(SwitchBridge); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddHost(t.Context(), hostIP2); err == nil {
		t.Fatal("AddHost without a bridge succeeded")
	}
	if len(l.Hosts) != 0 {
		t.Errorf("%d hosts after failed AddHost calls; want 0", len(l.Hosts))
	}
	if got := OpenFDs(t); got != before {
		t.Errorf("%d namespace fds after failed AddHost calls; want %d", got, before)
	}
	eventually(t, 10*time.Second, func() error { return linkGone(l.Switch, "h1") })
}

func TestLANTCleanupOnFailure(t *testing.T) {
	witness := NewT(t)
	before := OpenFDs(t)
	ft := &fakeTB{TB: t}
	ft.run(func(tb testing.TB) {
		l := NewLANT(tb, lanPrefix, hostIP2)
		// Tie the LAN's switch and host to the witness, then fail.
		if err := Veth(l.Switch, "w-sw", witness, "w0"); err != nil {
			t.Error(err)
		}
		if err := Veth(l.Hosts[0].NS, "w-h", witness, "w1"); err != nil {
			t.Error(err)
		}
		tb.Fatal("the test fails here")
	})
	if !ft.failed || ft.msg != "the test fails here" {
		t.Errorf("fake test: failed %v, %q; want the failure from the body", ft.failed, ft.msg)
	}
	if got := OpenFDs(t); got != before {
		t.Errorf("%d namespace fds after the failed test's cleanup; want %d", got, before)
	}
	for _, name := range []string{"w0", "w1"} {
		eventually(t, 10*time.Second, func() error { return linkGone(witness, name) })
	}
}
