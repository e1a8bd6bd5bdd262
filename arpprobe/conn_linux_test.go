package arpprobe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// veth is the lab of these tests: two namespaces joined by a veth pair,
// the prober's side A (va, 198.18.0.1/24) and a peer B (vb,
// 198.18.0.2/24) whose kernel answers ARP.
type veth struct {
	a, b     *netns.NS
	ifA, ifB *net.Interface
}

var (
	vethAddrA = netip.MustParseAddr("198.18.0.1")
	vethAddrB = netip.MustParseAddr("198.18.0.2")
)

// newVeth builds the lab; it is removed when the test ends. Without root
// it skips the test (fails it in CI).
func newVeth(t testing.TB) *veth {
	t.Helper()
	v := &veth{a: netns.NewT(t), b: netns.NewT(t)}
	steps := []func() error{
		func() error { return netns.Veth(v.a, "va", v.b, "vb") },
		func() error { return v.a.AddAddr("va", netip.PrefixFrom(vethAddrA, 24)) },
		func() error { return v.b.AddAddr("vb", netip.PrefixFrom(vethAddrB, 24)) },
		func() error { return v.a.SetUp("va") },
		func() error { return v.b.SetUp("vb") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	v.ifA = interfaceIn(t, v.a, "va")
	v.ifB = interfaceIn(t, v.b, "vb")
	waitOperUp(t, v.a, "va")
	waitOperUp(t, v.b, "vb")
	return v
}

// interfaceIn looks up the interface called name inside ns.
func interfaceIn(t testing.TB, ns *netns.NS, name string) *net.Interface {
	t.Helper()
	var ifi *net.Interface
	err := ns.Do(func() (err error) {
		ifi, err = net.InterfaceByName(name)
		return err
	})
	if err != nil {
		t.Fatalf("interface %s in %s: %v", name, ns, err)
	}
	return ifi
}

// waitOperUp waits until link is operationally up: until then the kernel
// may still have the no-op qdisc on it, which drops frames silently.
func waitOperUp(t testing.TB, ns *netns.NS, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := ns.Handle().LinkByName(name)
		if err != nil {
			t.Fatalf("link %s: %v", name, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s in %s: operational state %v after 5s, want up", name, ns, l.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listenIn opens a socket with lc on ifi inside ns, closed when the test
// ends.
func listenIn(t testing.TB, ns *netns.NS, ifi *net.Interface, lc ListenConfig) *packetConn {
	t.Helper()
	var c FrameConn
	err := ns.Do(func() (err error) {
		c, err = lc.Listen(ifi)
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	if rc, ok := c.(ringConn); ok {
		return rc.packetConn
	}
	return c.(*packetConn)
}

// request returns a request from A for ip: broadcast when dst is nil,
// else unicast to dst.
func (v *veth) request(t testing.TB, dst net.HardwareAddr, ip netip.Addr) []byte {
	t.Helper()
	b, err := requestTemplate(v.ifA.HardwareAddr, vethAddrA)
	if err != nil {
		t.Fatal(err)
	}
	setRequestTarget(b, dst, ip)
	return b
}

// readUntil reads frames until one satisfies ok or the timeout passes,
// and returns every frame read, in order.
func readUntil(t testing.TB, c FrameConn, timeout time.Duration, ok func([]byte) bool) (frames [][]byte, err error) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	buf := make([]byte, maxFrameBuffer)
	for {
		n, err := c.ReadFrame(buf)
		if err != nil {
			return frames, err
		}
		frames = append(frames, bytes.Clone(buf[:n]))
		if ok(buf[:n]) {
			return frames, nil
		}
	}
}

// replyFrom reports whether b is a reply whose sender is ip.
func replyFrom(ip netip.Addr) func([]byte) bool {
	return func(b []byte) bool {
		f, err := ParseFrame(b)
		return err == nil && f.Op == opReply && f.SenderIP == ip
	}
}

func TestListenARPExchange(t *testing.T) {
	v := newVeth(t)
	c := listenIn(t, v.a, v.ifA, ListenConfig{})

	// The socket was made on a thread inside A; from here on it is used
	// from this goroutine, which is not.
	wantReply := Frame{
		EtherDst:  [6]byte(v.ifA.HardwareAddr),
		EtherSrc:  [6]byte(v.ifB.HardwareAddr),
		Op:        opReply,
		SenderMAC: [6]byte(v.ifB.HardwareAddr),
		SenderIP:  vethAddrB,
		TargetMAC: [6]byte(v.ifA.HardwareAddr),
		TargetIP:  vethAddrA,
	}
	for _, tt := range []struct {
		name string
		dst  net.HardwareAddr
	}{
		{name: "broadcast", dst: nil},
		{name: "unicast to B's MAC", dst: v.ifB.HardwareAddr},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.WriteFrame(v.request(t, tt.dst, vethAddrB)); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			frames, err := readUntil(t, c, 2*time.Second, replyFrom(vethAddrB))
			if err != nil {
				t.Fatalf("no reply from %v: %v (read %d other frames)", vethAddrB, err, len(frames))
			}
			last := frames[len(frames)-1]
			if len(last) != minFrameLen {
				t.Errorf("reply is %d bytes, want %d (veth does not pad)", len(last), minFrameLen)
			}
			got, err := ParseFrame(last)
			if err != nil {
				t.Fatal(err)
			}
			if got != wantReply {
				t.Errorf("reply:\n got %+v\nwant %+v", got, wantReply)
			}
		})
	}

	t.Run("unicast to a wrong MAC", func(t *testing.T) {
		wrong := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x99}
		if err := c.WriteFrame(v.request(t, wrong, vethAddrB)); err != nil {
			t.Fatalf("WriteFrame: %v", err)
		}
		start := time.Now()
		frames, err := readUntil(t, c, 200*time.Millisecond, func([]byte) bool { return true })
		if err == nil {
			t.Fatalf("got a frame, want none: % x", frames[0])
		}
		if !os.IsTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ReadFrame error %v (%T), want a timeout", err, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("ReadFrame error %v is not a net.Error with Timeout", err)
		}
		if d := time.Since(start); d < 190*time.Millisecond {
			t.Errorf("timed out after %v, want 200ms", d)
		}
		if want := "arpprobe: read on va: i/o timeout"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})

	t.Run("deadline from another goroutine", func(t *testing.T) {
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.ReadFrame(make([]byte, maxFrameBuffer))
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := c.SetReadDeadline(time.Now()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if !os.IsTimeout(err) {
				t.Errorf("ReadFrame error %v, want a timeout", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("ReadFrame still blocked 2s after its deadline passed")
		}
	})

	t.Run("WriteFrames", func(t *testing.T) {
		wrong := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x99}
		bcast := v.request(t, nil, vethAddrB)
		huge := append(bytes.Clone(bcast), make([]byte, 2000)...)
		tests := []struct {
			name    string
			frames  [][]byte
			sent    int
			errText string // in the error, "" for none
			errno   syscall.Errno
			replies int
		}{
			{name: "four", frames: [][]byte{bcast, v.request(t, v.ifB.HardwareAddr, vethAddrB), v.request(t, wrong, vethAddrB), bcast},
				sent: 4, replies: 3},
			{name: "none", frames: nil},
			{name: "one too long for the MTU", frames: [][]byte{bcast, bcast, huge, bcast},
				sent: 2, errText: "arpprobe: write on va: frame longer than the interface's MTU: message too long", errno: unix.EMSGSIZE, replies: 2},
			{name: "one too short", frames: [][]byte{bcast, bcast[:13], bcast},
				sent: 1, errText: "shorter than an Ethernet header", replies: 1},
			{name: "first too short", frames: [][]byte{nil, bcast},
				sent: 0, errText: "frame of 0 bytes is shorter than an Ethernet header"},
			{name: "more than a batch", frames: slices.Repeat([][]byte{bcast}, maxWriteBatch+maxWriteBatch/2),
				sent: maxWriteBatch + maxWriteBatch/2, replies: maxWriteBatch + maxWriteBatch/2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n, err := c.WriteFrames(tt.frames)
				if n != tt.sent {
					t.Errorf("WriteFrames sent %d, want %d", n, tt.sent)
				}
				switch {
				case tt.errText == "" && err != nil:
					t.Errorf("WriteFrames: %v, want no error", err)
				case tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText)):
					t.Errorf("WriteFrames: %v, want an error with %q", err, tt.errText)
				case tt.errno != 0 && !errors.Is(err, tt.errno):
					t.Errorf("WriteFrames: %v, want %v", err, tt.errno)
				}
				// The replies, and nothing more: a failed entry left no
				// error in the socket for ReadFrame.
				got := 0
				if tt.replies > 0 {
					frames, err := readUntil(t, c, 2*time.Second, func(b []byte) bool {
						if replyFrom(vethAddrB)(b) {
							got++
						}
						return got == tt.replies
					})
					if err != nil {
						t.Fatalf("%d replies of %d, then %v (read %d frames)", got, tt.replies, err, len(frames))
					}
				}
				frames, err := readUntil(t, c, 100*time.Millisecond, func([]byte) bool { return true })
				if !os.IsTimeout(err) {
					t.Errorf("after %d replies: read %d more frames, error %v; want a timeout", got, len(frames), err)
				}
			})
		}
	})

	t.Run("no allocations", func(t *testing.T) {
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		req := v.request(t, v.ifB.HardwareAddr, vethAddrB)
		buf := make([]byte, maxFrameBuffer)
		var f Frame
		var failed error
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.WriteFrame(req); err != nil {
				failed = err
				return
			}
			n, err := c.ReadFrame(buf)
			if err != nil {
				failed = err
				return
			}
			if r := parseFrame(buf[:n], &f); r != DropNone {
				failed = fmt.Errorf("reply dropped: %v", r)
			}
		})
		if failed != nil {
			t.Fatal(failed)
		}
		if allocs != 0 {
			t.Errorf("%v allocations per request and reply, want 0", allocs)
		}

		reqs := [][]byte{req, req, req, req}
		allocs = testing.AllocsPerRun(100, func() {
			if n, err := c.WriteFrames(reqs); err != nil {
				failed = fmt.Errorf("WriteFrames: %d sent: %v", n, err)
				return
			}
			for range reqs {
				n, err := c.ReadFrame(buf)
				if err != nil {
					failed = err
					return
				}
				if r := parseFrame(buf[:n], &f); r != DropNone {
					failed = fmt.Errorf("reply dropped: %v", r)
				}
			}
		})
		if failed != nil {
			t.Fatal(failed)
		}
		if allocs != 0 {
			t.Errorf("%v allocations per WriteFrames of 4 requests and 4 reads, want 0", allocs)
		}
	})

	drops, err := c.KernelDrops()
	if err != nil || drops != 0 {
		t.Errorf("KernelDrops() = %d, %v; want 0, nil", drops, err)
	}

	t.Run("close", func(t *testing.T) {
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.ReadFrame(make([]byte, maxFrameBuffer))
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("ReadFrame after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("ReadFrame still blocked 2s after Close")
		}
		if err := c.WriteFrame(v.request(t, nil, vethAddrB)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("WriteFrame after Close: %v, want net.ErrClosed", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v, want net.ErrClosed", err)
		}
	})
}

// TestListenARPFilter injects frames from B and checks which ones a
// replies-only socket, a socket for requests too, and an unfiltered
// socket in A receive: with the counting eBPF filter (as root), which
// must also count each rejected frame for its reason, and with the
// classic one.
func TestListenARPFilter(t *testing.T) {
	for _, classic := range []bool{false, true} {
		name := "ebpf"
		if classic {
			name = "classic"
		}
		t.Run(name, func(t *testing.T) { testListenARPFilter(t, classic) })
	}
}

func testListenARPFilter(t *testing.T, classic bool) {
	v := newVeth(t)
	// A macvlan on va: frames for its MAC reach va's sockets with the
	// macvlan as their device.
	for _, err := range []error{v.a.Macvlan("va", "mv0"), v.a.SetUp("mv0")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	mvMAC, err := v.a.LinkMAC("mv0")
	if err != nil {
		t.Fatal(err)
	}

	replies := listenIn(t, v.a, v.ifA, ListenConfig{ClassicFilter: classic})
	requests := listenIn(t, v.a, v.ifA, ListenConfig{Requests: true, ClassicFilter: classic})
	if counted := replies.filter != nil; counted == classic {
		t.Fatalf("counting filter loaded: %v, want %v (as root)", counted, !classic)
	}
	var all *packet.Conn
	err = v.a.Do(func() (err error) {
		all, err = packet.Listen(v.ifA, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { all.Close() })
	inject := listenIn(t, v.b, v.ifB, ListenConfig{})

	macA, macB := v.ifA.HardwareAddr, v.ifB.HardwareAddr
	// Each frame has a sender address of its own, 198.18.0.100 and up, so
	// no two are alike; the kernel in A answers none of them.
	n := 0
	senderIP := func() netip.Addr { n++; return netip.AddrFrom4([4]byte{198, 18, 0, byte(100 + n)}) }
	reply := func() []byte { return arpFrame(t, arp.OperationReply, macB, senderIP(), macA, vethAddrA)[:42] }
	request := func() []byte {
		return arpFrame(t, arp.OperationRequest, macB, senderIP(), ethernet.Broadcast, netip.MustParseAddr("198.18.0.77"))[:42]
	}
	setDst := func(m net.HardwareAddr) func([]byte) { return func(b []byte) { copy(b[0:6], m) } }

	tests := []struct {
		name     string
		frame    []byte
		replies  bool // the replies-only socket gets it
		requests bool // the socket with Requests gets it
		drop     DropReason
		rejected DropReason // why the counting filter rejects it (both sockets), if it does
	}{
		{name: "reply", frame: reply(), replies: true, requests: true},
		{name: "reply 60 bytes", frame: arpFrame(t, arp.OperationReply, macB, senderIP(), macA, vethAddrA), replies: true, requests: true},
		{name: "reply with trailer", frame: append(arpFrame(t, arp.OperationReply, macB, senderIP(), macA, vethAddrA), 1, 2, 3, 4), replies: true, requests: true},
		{name: "broadcast reply", frame: edit(reply(), setDst(ethernet.Broadcast)), replies: true, requests: true},
		{name: "broadcast request", frame: request(), requests: true},
		{name: "unicast request", frame: edit(request(), setDst(macA)), requests: true},
		{name: "reply with a broadcast sender MAC", frame: edit(reply(), func(b []byte) { copy(b[offSenderMAC:], ethernet.Broadcast) }), rejected: DropSender},
		{name: "reply with a multicast sender MAC", frame: edit(reply(), func(b []byte) { copy(b[offSenderMAC:], []byte{0x01, 0, 0x5e, 0, 0, 1}) }), rejected: DropSender},
		{name: "reply with a zero sender MAC", frame: edit(reply(), func(b []byte) { clear(b[offSenderMAC : offSenderMAC+6]) }), rejected: DropSender},
		// The replies-only socket rejects a request before it looks at
		// the sender, uncounted; the other counts it for its sender.
		{name: "request with a zero sender MAC", frame: edit(request(), func(b []byte) { clear(b[offSenderMAC : offSenderMAC+6]) })},
		// Never offered to a socket bound to ETH_P_ARP: nothing to count.
		{name: "IPv4 EtherType", frame: edit(reply(), func(b []byte) { b[12], b[13] = 0x08, 0x00 })},
		{name: "htype 6", frame: edit(reply(), func(b []byte) { b[15] = 6 }), rejected: DropFormat},
		{name: "ptype IPv6", frame: edit(reply(), func(b []byte) { b[16], b[17] = 0x86, 0xdd }), rejected: DropFormat},
		{name: "hlen 8", frame: edit(reply(), func(b []byte) { b[18] = 8 }), rejected: DropFormat},
		{name: "plen 16", frame: edit(reply(), func(b []byte) { b[19] = 16 }), rejected: DropFormat},
		{name: "opcode 3", frame: edit(reply(), func(b []byte) { b[21] = 3 }), rejected: DropOpcode},
		{name: "41 bytes", frame: reply()[:41], rejected: DropShort},
		{name: "802.1Q tagged reply", frame: tag(reply(), etherTypeVLAN, 5), rejected: DropOtherHost},
		{name: "802.1Q tagged request", frame: tag(request(), etherTypeVLAN, 5), rejected: DropOtherHost},
		{name: "reply to another MAC", frame: edit(reply(), setDst(net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x99})), rejected: DropOtherHost},
		{name: "reply to a macvlan on va", frame: edit(reply(), setDst(mvMAC)), rejected: DropOtherHost},
	}
	for _, tt := range tests {
		if err := inject.WriteFrame(tt.frame); err != nil {
			t.Fatalf("inject %s: %v", tt.name, err)
		}
	}
	// The last frame sent; once each socket has it, nothing sent before it
	// is still on its way except through another CPU's backlog, so each
	// socket is read a little longer.
	last := reply()
	if err := inject.WriteFrame(last); err != nil {
		t.Fatal(err)
	}
	isLast := func(b []byte) bool { return bytes.Equal(b, last) }
	read := func(name string, c FrameConn) [][]byte {
		frames, err := readUntil(t, c, 2*time.Second, isLast)
		if err != nil {
			t.Fatalf("%s socket: last frame not received: %v", name, err)
		}
		more, err := readUntil(t, c, 100*time.Millisecond, func([]byte) bool { return false })
		if !os.IsTimeout(err) {
			t.Fatalf("%s socket: %v", name, err)
		}
		return append(frames[:len(frames)-1], more...)
	}
	gotReplies := read("replies-only", replies)
	gotRequests := read("requests", requests)
	gotAll := readAll(t, all, last)

	// What the counting filters counted: each rejected frame, for its
	// reason, on each socket; the replies-only socket rejects requests
	// without counting them. Frames of the kernels may add to the counts.
	var want [numDropReasons]uint64
	for _, tt := range tests {
		if tt.rejected != DropNone {
			want[tt.rejected]++
		}
	}
	for name, c := range map[string]*packetConn{"replies-only": replies, "requests": requests} {
		got, err := c.kernelRejects()
		if classic {
			if !errors.Is(err, errNotCounted) {
				t.Errorf("%s socket, classic filter: kernelRejects error %v, want errNotCounted", name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s socket: %v", name, err)
		}
		for r := DropShort; r < numDropReasons; r++ {
			if got[r] < want[r] || want[r] == 0 && got[r] != 0 && r != DropOtherHost {
				t.Errorf("%s socket: counting filter rejected %d frames for %s, want %d", name, got[r], r, want[r])
			}
		}
	}

	has := func(frames [][]byte, b []byte) bool {
		for _, f := range frames {
			if bytes.Equal(f, b) {
				return true
			}
		}
		return false
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The kernel has taken the tag out of a tagged frame before
			// any socket sees it.
			seen := tt.frame
			if tpid := seen[12:14]; (tpid[0] == 0x81 && tpid[1] == 0x00) && len(seen) > 18 {
				seen = append(bytes.Clone(seen[:12]), seen[16:]...)
			}
			if !has(gotAll, seen) {
				t.Fatalf("the unfiltered socket did not receive it: the kernel dropped it before any filter")
			}
			if got := has(gotReplies, seen); got != tt.replies {
				t.Errorf("replies-only socket received it: %v, want %v", got, tt.replies)
			}
			if got := has(gotRequests, seen); got != tt.requests {
				t.Errorf("socket with requests received it: %v, want %v", got, tt.requests)
			}
			if tt.replies || tt.requests {
				var f Frame
				if r := parseFrame(seen, &f); r != tt.drop {
					t.Errorf("parseFrame: %v, want %v", r, tt.drop)
				}
			}
		})
	}
	// Nothing else came through: no frame of the kernels.
	for name, got := range map[string][][]byte{"replies-only": gotReplies, "requests": gotRequests} {
		for _, f := range got {
			known := false
			for _, tt := range tests {
				known = known || bytes.Equal(f, tt.frame)
			}
			if !known {
				t.Errorf("%s socket received a frame nobody injected: % x", name, f)
			}
		}
	}
}

// readAll reads from an unfiltered packet.Conn until it has read last,
// and a little longer.
func readAll(t *testing.T, c *packet.Conn, last []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	buf := make([]byte, maxFrameBuffer)
	deadline := time.Now().Add(2 * time.Second)
	gotLast := false
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFrom(buf)
		if os.IsTimeout(err) && gotLast {
			return frames
		}
		if err != nil {
			t.Fatalf("unfiltered socket: %v", err)
		}
		frames = append(frames, bytes.Clone(buf[:n]))
		if !gotLast && bytes.Equal(buf[:n], last) {
			gotLast = true
			deadline = time.Now().Add(100 * time.Millisecond)
		}
	}
}

func TestListenARPReadBuffer(t *testing.T) {
	v := newVeth(t)
	ringSize := func(c *packetConn) int {
		if c.ring == nil {
			return 0
		}
		return c.ring.blockSize * c.ring.blocks
	}
	// ReadBuffer sizes the receive ring; a negative one maps none.
	for _, tt := range []struct {
		name       string
		readBuffer int
		want       int
	}{
		{"default", 0, DefaultReadBuffer},
		{"64 KiB", 1 << 16, 1 << 16},
		{"one byte: two pages", 1, 2 * os.Getpagesize()},
		{"negative: no ring", -1, 0},
	} {
		if got := ringSize(listenIn(t, v.a, v.ifA, ListenConfig{ReadBuffer: tt.readBuffer})); got != tt.want {
			t.Errorf("%s: ring of %d bytes, want %d", tt.name, got, tt.want)
		}
	}

	// A socket nobody reads, with the smallest ring, drops what does not
	// fit, and KernelDrops says so once.
	small := listenIn(t, v.a, v.ifA, ListenConfig{ReadBuffer: 1})
	witness := listenIn(t, v.a, v.ifA, ListenConfig{})
	inject := listenIn(t, v.b, v.ifB, ListenConfig{})
	reply := arpFrame(t, arp.OperationReply, v.ifB.HardwareAddr, vethAddrB, v.ifA.HardwareAddr, vethAddrA)[:42]
	const sent = 200
	for range sent {
		if err := inject.WriteFrame(reply); err != nil {
			t.Fatal(err)
		}
	}
	// A socket with room for them all has them all: every frame was
	// delivered (or dropped) to every socket.
	got := 0
	frames, err := readUntil(t, witness, 2*time.Second, func([]byte) bool { got++; return got == sent })
	if err != nil {
		t.Fatalf("witness socket got %d of %d frames: %v", len(frames), sent, err)
	}
	drops, err := small.KernelDrops()
	if err != nil {
		t.Fatal(err)
	}
	if drops == 0 || drops >= sent {
		t.Errorf("KernelDrops() = %d after %d frames to a full small buffer, want some but not all", drops, sent)
	}
	if drops, err := small.KernelDrops(); err != nil || drops != 0 {
		t.Errorf("second KernelDrops() = %d, %v; want 0 (counters reset)", drops, err)
	}
	// The frames that fitted are there to read.
	frames, _ = readUntil(t, small, 100*time.Millisecond, func([]byte) bool { return false })
	if len(frames) == 0 || len(frames) >= sent {
		t.Errorf("read %d frames from the small buffer, want some but not all %d", len(frames), sent)
	}
}

func TestListenARPErrors(t *testing.T) {
	v := newVeth(t)

	t.Run("short frame", func(t *testing.T) {
		c := listenIn(t, v.b, v.ifB, ListenConfig{})
		if err := c.WriteFrame(make([]byte, 13)); err == nil || !strings.Contains(err.Error(), "shorter than an Ethernet header") {
			t.Errorf("WriteFrame of 13 bytes: %v, want an error", err)
		}
	})

	t.Run("no such interface", func(t *testing.T) {
		var err error
		v.a.Do(func() error {
			_, err = ListenARP(&net.Interface{Index: 9999, Name: "gone0"})
			return nil
		})
		if !errors.Is(err, syscall.ENODEV) {
			t.Fatalf("ListenARP: %v, want ENODEV", err)
		}
		if want := "arpprobe: listen on gone0: no interface with index 9999 in this network namespace: no such device"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})

	t.Run("interface down", func(t *testing.T) {
		if err := v.a.SetDown("va"); err != nil {
			t.Fatal(err)
		}
		var err error
		v.a.Do(func() error {
			_, err = ListenARP(v.ifA)
			return nil
		})
		if !errors.Is(err, syscall.ENETDOWN) || !strings.Contains(err.Error(), "listen on va: interface is down") {
			t.Errorf("ListenARP on a down interface: %v, want ENETDOWN and a clear message", err)
		}
		if err := v.a.SetUp("va"); err != nil {
			t.Fatal(err)
		}
		waitOperUp(t, v.a, "va")
	})

	t.Run("interface goes down and away", func(t *testing.T) {
		c := listenIn(t, v.a, v.ifA, ListenConfig{})
		if err := v.a.SetDown("va"); err != nil {
			t.Fatal(err)
		}
		err := c.WriteFrame(v.request(t, nil, vethAddrB))
		if !errors.Is(err, syscall.ENETDOWN) || err.Error() != "arpprobe: write on va: interface is down: network is down" {
			t.Errorf("WriteFrame on a down interface: %v, want ENETDOWN", err)
		}
		_, err = readUntil(t, c, time.Second, func([]byte) bool { return true })
		if !errors.Is(err, syscall.ENETDOWN) || os.IsTimeout(err) {
			t.Errorf("ReadFrame after the interface went down: %v, want ENETDOWN", err)
		}
		if err := v.a.DeleteLink("va"); err != nil {
			t.Fatal(err)
		}
		err = c.WriteFrame(v.request(t, nil, vethAddrB))
		if !errors.Is(err, syscall.ENXIO) || !strings.Contains(err.Error(), "interface is gone") {
			t.Errorf("WriteFrame on a deleted interface: %v, want ENXIO", err)
		}
	})

}

// TestListenARPInvalidInterface needs no privilege: Listen refuses these
// interfaces before it opens a socket.
func TestListenARPInvalidInterface(t *testing.T) {
	tests := []struct {
		ifi  *net.Interface
		want string
	}{
		{nil, "arpprobe: listen: no interface"},
		{&net.Interface{Name: "x", Index: 0}, "arpprobe: listen on x: invalid interface index 0"},
		{&net.Interface{Name: "y", Index: -2}, "arpprobe: listen on y: invalid interface index -2"},
	}
	for _, tt := range tests {
		c, err := ListenARP(tt.ifi)
		if err == nil {
			c.Close()
			t.Fatalf("ListenARP(%+v) succeeded, want an error", tt.ifi)
		}
		if err.Error() != tt.want {
			t.Errorf("ListenARP(%+v): %q, want %q", tt.ifi, err, tt.want)
		}
	}
}

// TestListenARPPermission opens a socket on a thread without CAP_NET_RAW:
// Listen must say which capability is missing.
func TestListenARPPermission(t *testing.T) {
	netns.Require(t)
	errc := make(chan error, 1)
	go func() {
		// This thread gets a namespace of its own and loses CAP_NET_RAW;
		// it is never unlocked, so it ends with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		data[unix.CAP_NET_RAW/32].Effective &^= 1 << (unix.CAP_NET_RAW % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			errc <- err
			return
		}
		c, err := ListenARP(lo)
		if err == nil {
			c.Close()
			errc <- errors.New("ListenARP succeeded without CAP_NET_RAW")
			return
		}
		var ce *CapabilityError
		if !errors.Is(err, os.ErrPermission) || !errors.As(err, &ce) || ce.Capability != "CAP_NET_RAW" {
			errc <- fmt.Errorf("ListenARP: %v, want os.ErrPermission and a CapabilityError for CAP_NET_RAW", err)
			return
		}
		if want := "arpprobe: listen on lo: raw sockets need CAP_NET_RAW: operation not permitted"; err.Error() != want {
			errc <- fmt.Errorf("error %q, want %q", err, want)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkExchange measures request/reply exchanges through one socket
// on a veth, with a window of requests outstanding: one goroutine writes,
// one reads. Each op is one exchange; allocs/op counts both frames. The
// writer sends one WriteFrame per request ("frame"), or as many requests
// as the window has room for with one WriteFrames ("frames").
//
//	go test -run '^$' -bench Exchange -benchtime 3s ./arpprobe/
func BenchmarkExchange(b *testing.B) {
	for _, cast := range []string{"broadcast", "unicast"} {
		for _, bc := range []struct {
			window int
			batch  bool
		}{{1, false}, {64, false}, {64, true}} {
			name := fmt.Sprintf("%s/window=%d/frame", cast, bc.window)
			if bc.batch {
				name = fmt.Sprintf("%s/window=%d/frames", cast, bc.window)
			}
			b.Run(name, func(b *testing.B) {
				v := newVeth(b)
				c := listenIn(b, v.a, v.ifA, ListenConfig{})
				var dst net.HardwareAddr
				if cast == "unicast" {
					dst = v.ifB.HardwareAddr
				}
				benchExchange(b, c, v.request(b, dst, vethAddrB), bc.window, bc.batch)
			})
		}
	}
}

func benchExchange(b *testing.B, c *packetConn, req []byte, window int, batch bool) {
	// A token per exchange that may start; the reader puts one back per
	// reply. A token not back within lostAfter counts as lost.
	const lostAfter = 100 * time.Millisecond
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	reqs := make([][]byte, window)
	for i := range reqs {
		reqs[i] = req
	}
	var received, lost atomic.Int64
	var readErr error
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		defer close(done)
		buf := make([]byte, maxFrameBuffer)
		var f Frame
		for {
			n, err := c.ReadFrame(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					readErr = err
				}
				return
			}
			if parseFrame(buf[:n], &f) != DropNone || f.Op != opReply {
				continue
			}
			received.Add(1)
			select {
			case tokens <- struct{}{}:
			default:
			}
		}
	}()
	timer := time.NewTimer(lostAfter)
	for sent := 0; sent < b.N; {
		// Wait for one token, then take what else is there.
		k := 0
		select {
		case <-tokens:
		default:
			timer.Reset(lostAfter)
			select {
			case <-tokens:
			case <-timer.C:
				lost.Add(1)
			}
		}
		for k = 1; batch && k < window && sent+k < b.N; k++ {
			select {
			case <-tokens:
				continue
			default:
			}
			break
		}
		if batch {
			if n, err := c.WriteFrames(reqs[:k]); err != nil {
				b.Fatalf("WriteFrames: %d of %d sent: %v", n, k, err)
			}
		} else if err := c.WriteFrame(req); err != nil {
			b.Fatalf("WriteFrame: %v", err)
		}
		sent += k
	}
	// Wait for the last replies.
	deadline := time.Now().Add(time.Second)
	for received.Load()+lost.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	c.Close()
	<-done
	if readErr != nil {
		b.Fatalf("ReadFrame: %v", readErr)
	}
	b.ReportMetric(float64(received.Load())/b.Elapsed().Seconds(), "exchanges/s")
	b.ReportMetric(float64(int64(b.N)-received.Load())/float64(b.N), "lost/op")
}
