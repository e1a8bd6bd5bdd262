package watch

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// The mismatch filter in the kernel: of IPv4 frames from a watched
// address with its cached MAC, from an address not watched, and from a
// watched address with another MAC, only the last passes, and of a burst
// of those, one (then none for a second).
func TestMismatchFilter(t *testing.T) {
	watched, other := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), watched)
	h := lan.Hosts[0]
	cachedMAC, err := h.MAC() // the host's own: its real traffic (IGMP ...) matches
	if err != nil {
		t.Fatal(err)
	}
	proberMAC, err := lan.Prober.LinkMAC(netns.LANIface)
	if err != nil {
		t.Fatal(err)
	}
	ifindex, err := lan.Prober.LinkIndex(netns.LANIface)
	if err != nil {
		t.Fatal(err)
	}
	f, err := loadMismatchFilter()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.set(neighKey{ifindex, watched}, cachedMAC); err != nil {
		t.Fatal(err)
	}

	var rx, tx *packet.Conn
	err = lan.Prober.Do(func() error {
		ifi, err := net.InterfaceByIndex(ifindex)
		if err != nil {
			return err
		}
		if rx, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil); err != nil {
			return err
		}
		rc, err := rx.SyscallConn()
		if err != nil {
			return err
		}
		var aerr error
		return errors.Join(rc.Control(func(fd uintptr) { aerr = f.attach(int(fd)) }), aerr)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	err = h.NS.Do(func() error {
		ifi, err := net.InterfaceByName(netns.HostIface)
		if err != nil {
			return err
		}
		tx, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	spoofed := net.HardwareAddr{0x02, 0xdd, 0, 0, 0, 1}
	frame := func(src netip.Addr, mac net.HardwareAddr) []byte {
		b := synFrame(src, unix.IPPROTO_UDP, 0, 0)
		copy(b[0:6], proberMAC)
		copy(b[6:12], mac)
		return b
	}
	send := func(b []byte) {
		t.Helper()
		if _, err := tx.WriteTo(b, &packet.Addr{HardwareAddr: proberMAC}); err != nil {
			t.Fatal(err)
		}
	}
	send(frame(watched, cachedMAC))
	send(frame(other, spoofed))
	const burst = 10
	start := time.Now()
	for range burst {
		send(frame(watched, spoofed))
	}
	sending := time.Since(start)

	var got []string
	buf := make([]byte, 128)
	for {
		rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := rx.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		mac, ip, ok := parseIPv4Source(buf[:n])
		if !ok {
			t.Fatalf("the filter passed a frame that is not IPv4: %x", buf[:n])
		}
		got = append(got, ip.String()+" "+net.HardwareAddr(mac[:]).String())
	}
	want := watched.String() + " " + spoofed.String()
	for _, g := range got {
		if g != want {
			t.Errorf("the filter passed a frame from %s; want only %s", g, want)
		}
	}
	// At most one a second per entry: a burst sent within a second
	// passes once.
	if len(got) == 0 || sending < time.Second && len(got) != 1 {
		t.Errorf("the filter passed %d of %d mismatching frames sent in %v; want 1", len(got), burst, sending)
	}
}
