package arpprobe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// What the hostile LAN's flood puts on the prober's wire, seen by a
// socket without a filter, and a late reply from a real kernel's LAN.
// Without the witness, a test that sends a kind of frame and finds the
// verdicts right could pass because the frames never arrived.

// The kinds of frame in hostileFrames, as floodKind names them.
var floodKinds = []string{
	"truncated", "hardware type", "protocol type", "hardware address length", "protocol address length",
	"opcode", "sender MAC broadcast", "sender MAC zero", "sender MAC IPv4 multicast", "sender MAC IPv6 multicast",
	"VLAN-tagged", "reply about an address nobody asked about", "gratuitous request", "gratuitous reply",
	"owner's reply again (late, duplicate)",
}

// hostileSender is the sender MAC of hostileFrames' malformed and tagged
// claims; untagged and well-formed it is never sent.
var hostileSender = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}

// floodKind names the kind of a frame the flooder (flooderMAC) sent, as
// received by the prober's kernel: a tag is already taken off, so a
// tagged frame shows as the well-formed claim from hostileSender that
// is only ever sent tagged. "" is any other frame.
func floodKind(b []byte, flooderMAC net.HardwareAddr) string {
	if len(b) < minFrameLen {
		return "truncated"
	}
	if !bytes.Equal(b[6:12], flooderMAC) {
		return "" // a genuine host's frame
	}
	a := b[etherHeaderLen:]
	op := binary.BigEndian.Uint16(a[6:8])
	switch {
	case binary.BigEndian.Uint16(a[0:2]) != 1:
		return "hardware type"
	case binary.BigEndian.Uint16(a[2:4]) != 0x0800:
		return "protocol type"
	case a[4] != 6:
		return "hardware address length"
	case a[5] != 4:
		return "protocol address length"
	case op != opRequest && op != opReply:
		return "opcode"
	}
	sha, spa, tpa := net.HardwareAddr(a[8:14]), a[14:18], a[24:28]
	switch {
	case bytes.Equal(sha, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}):
		return "sender MAC broadcast"
	case bytes.Equal(sha, make(net.HardwareAddr, 6)):
		return "sender MAC zero"
	case sha[0] == 0x01:
		return "sender MAC IPv4 multicast"
	case sha[0] == 0x33 && sha[1] == 0x33:
		return "sender MAC IPv6 multicast"
	case bytes.Equal(sha, hostileSender):
		return "VLAN-tagged"
	case bytes.Equal(sha, flooderMAC) && bytes.Equal(spa, tpa) && op == opRequest:
		return "gratuitous request"
	case bytes.Equal(sha, flooderMAC) && bytes.Equal(spa, tpa):
		return "gratuitous reply"
	case bytes.Equal(sha, flooderMAC):
		return "reply about an address nobody asked about"
	default:
		return "owner's reply again (late, duplicate)"
	}
}

// witnessFlood reads the prober's interface with a socket of its own,
// without a filter, until it has seen every kind of flood frame arrive,
// and fails the test if one never does.
func witnessFlood(t *testing.T, hl *hostileLAN, flooderMAC net.HardwareAddr) {
	t.Helper()
	var c *packet.Conn
	err := hl.Prober.Do(func() error {
		ifi, err := net.InterfaceByName(netns.LANIface)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A guard against a hang, not a measure: the flood sends each kind
	// thousands of times a second.
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	buf := make([]byte, maxFrameBuffer)
	for frames := 0; ; frames++ {
		missing := slices.DeleteFunc(slices.Clone(floodKinds), func(k string) bool { return seen[k] > 0 })
		if len(missing) == 0 {
			t.Logf("every kind of flood frame reached the prober's interface within %d frames", frames)
			return
		}
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("these kinds of flood frame never reached the prober's interface: %q (seen %v)", missing, seen)
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[floodKind(buf[:n], flooderMAC)]++
	}
}

// kindTap counts, by floodKind, the frames the prober's reader received
// from the flooder.
type kindTap struct {
	flooder net.HardwareAddr
	mu      sync.Mutex
	seen    map[string]int
}

func (k *kindTap) tap(ev TapEvent) {
	if ev.Sent {
		return
	}
	kind := floodKind(ev.Frame, k.flooder)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seen[kind]++
}

func (k *kindTap) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seen = map[string]int{}
}

// Kinds of flood frame the socket filter drops in the kernel: every one
// of them reaches the prober's interface (witnessFlood), none its reader.
var filteredKinds = []string{"truncated", "hardware type", "protocol type", "hardware address length",
	"protocol address length", "opcode", "VLAN-tagged", "gratuitous request",
	"sender MAC broadcast", "sender MAC zero", "sender MAC IPv4 multicast", "sender MAC IPv6 multicast"}

// check checks that no frame the socket filter should drop reached the
// prober's reader, and that the kinds it should pass did.
func (k *kindTap) check(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, kind := range filteredKinds {
		if k.seen[kind] != 0 {
			t.Errorf("the prober's reader received %d frames of kind %q; the socket filter should drop them", k.seen[kind], kind)
		}
	}
	for _, kind := range []string{"reply about an address nobody asked about", "gratuitous reply"} {
		if k.seen[kind] == 0 {
			t.Errorf("no %s reached the prober's reader", kind)
		}
	}
}

// TestLANLateReply: on a real LAN, a reply for a dead peer that comes
// after its window, while the run still probes another peer, decides
// nothing: the peer is dead, its entry is deleted (--delete-dead), and
// the late MAC is written nowhere. The other peer's requests wait for the
// rate limit (two frames a run, four a second), long after the dead
// peer's window of 100 ms; the flooder host sends the late reply as they
// are sent.
func TestLANLateReply(t *testing.T) {
	hl := newHostileLAN(t)
	fmac, err := hl.flooder.MAC()
	if err != nil {
		t.Fatal(err)
	}
	var late FrameConn
	err = hl.flooder.NS.Do(func() error {
		ifi, err := net.InterfaceByName(netns.HostIface)
		if err != nil {
			return err
		}
		late, err = ListenConfig{ReadBuffer: -1}.Listen(ifi)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	lateReply := craftARP(netns.HostMAC(0), fmac, 1, 0x0800, 6, 4, opReply, fmac, hlDead, netns.HostMAC(0), "198.18.0.1")

	var (
		once     sync.Once
		sendErr  error
		mu       sync.Mutex
		received bool // the late reply reached the prober's reader
	)
	cfg := ProberConfig{Tap: func(ev TapEvent) {
		if ev.Sent {
			if f, err := ParseFrame(ev.Frame); err == nil && f.TargetIP.String() == hlHealthy {
				once.Do(func() { sendErr = late.WriteFrame(lateReply) })
			}
			return
		}
		if ev.Parsed != nil && ev.Parsed.SenderIP.String() == hlDead && ev.Parsed.SenderMAC == [6]byte(fmac) {
			mu.Lock()
			received = true
			mu.Unlock()
		}
	}}
	before := hl.table(t)
	rep, err := hl.check(t, t.Context(), cfg, []string{hlDead, hlHealthy}, Options{
		Probe: ProbeOptions{Timeout: 100 * time.Millisecond, Attempts: 1, Settle: 50 * time.Millisecond,
			Broadcast: BroadcastAlways, Rate: 4, BroadcastRate: 4},
		Repair: &RepairPolicy{DeleteDead: true}})
	if err != nil || sendErr != nil {
		t.Fatal(err, sendErr)
	}
	mu.Lock()
	if !received {
		t.Errorf("the late reply did not reach the prober during the run; the test proves nothing")
	}
	mu.Unlock()
	checkHostileReport(t, rep, map[string]hlWant{
		hlDead:    {VerdictDead, "", ActionDeleted},
		hlHealthy: {VerdictOK, netns.HostMAC(1).String(), ActionNone},
	})
	if rep.Stats.Dropped[DropUnsolicited] == 0 {
		t.Errorf("dropped %v; want the late reply counted as unsolicited", rep.Stats.Dropped)
	}
	want := maps2(before)
	delete(want, hlDead)
	if after := hl.table(t); !mapsEqual(want, after) {
		t.Errorf("table:\n got %v\nwant %v", after, want)
	}
}
