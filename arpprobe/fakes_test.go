package arpprobe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fakeHost is a host on a fakeLAN: it answers requests for ip from mac.
type fakeHost struct {
	ip    netip.Addr
	mac   net.HardwareAddr
	delay time.Duration // before its reply arrives
}

// fakeLAN simulates one broadcast domain behind fake FrameConns: hosts
// answer requests for their address, broadcast ones and unicast ones sent
// to their MAC, like a kernel with arp_ignore=1.
type fakeLAN struct {
	mu       sync.Mutex
	hosts    []fakeHost
	sent     []Frame // every frame the prober wrote, parsed
	writeErr func(n int) error
	conns    []*fakeConn
	onSend   func(f Frame) // optional, called with each request
	// lose, if set, says whether h's reply to request f is lost in the
	// receiving kernel: it is not delivered, and the conn's KernelDrops
	// counts it, as a full receive ring would.
	lose func(f Frame, h fakeHost) bool
}

func (lan *fakeLAN) add(ip string, mac net.HardwareAddr, delay time.Duration) {
	lan.mu.Lock()
	defer lan.mu.Unlock()
	lan.hosts = append(lan.hosts, fakeHost{netip.MustParseAddr(ip), mac, delay})
}

// listener returns a Listener and InterfaceByIndex for the LAN: every
// index is an interface "fake<index>" with MAC 02:00:00:00:ff:<index>.
func (lan *fakeLAN) config() ProberConfig {
	return ProberConfig{
		Listen: func(ifi *net.Interface) (FrameConn, error) {
			c := &fakeConn{lan: lan, rx: make(chan []byte, 4096), closed: make(chan struct{})}
			lan.mu.Lock()
			lan.conns = append(lan.conns, c)
			lan.mu.Unlock()
			return c, nil
		},
		InterfaceByIndex: func(i int) (*net.Interface, error) {
			if i <= 0 || i > 200 {
				return nil, errors.New("no such interface")
			}
			return &net.Interface{Index: i, Name: "fake" + string(rune('0'+i%10)),
				HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0xff, byte(i)}}, nil
		},
	}
}

// inject delivers a raw frame to every conn, as if it came off the wire.
func (lan *fakeLAN) inject(b []byte) {
	lan.mu.Lock()
	conns := lan.conns
	lan.mu.Unlock()
	for _, c := range conns {
		c.deliver(append([]byte(nil), b...), 0)
	}
}

func (lan *fakeLAN) count(pred func(Frame) bool) int {
	lan.mu.Lock()
	defer lan.mu.Unlock()
	n := 0
	for _, f := range lan.sent {
		if pred(f) {
			n++
		}
	}
	return n
}

func isBroadcast(f Frame) bool { return f.EtherDst == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

type fakeConn struct {
	lan    *fakeLAN
	rx     chan []byte
	closed chan struct{}
	once   sync.Once
	writes int
	drops  atomic.Uint64 // replies lost (fakeLAN.lose) since KernelDrops
}

// KernelDrops reports, and resets, the replies lost by fakeLAN.lose.
func (c *fakeConn) KernelDrops() (uint64, error) { return c.drops.Swap(0), nil }

func (c *fakeConn) deliver(b []byte, delay time.Duration) {
	send := func() {
		select {
		case c.rx <- b:
		case <-c.closed:
		}
	}
	if delay > 0 {
		time.AfterFunc(delay, send)
		return
	}
	send()
}

func (c *fakeConn) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-c.rx:
		return copy(b, f), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *fakeConn) WriteFrame(b []byte) error {
	lan := c.lan
	lan.mu.Lock()
	c.writes++
	if lan.writeErr != nil {
		if err := lan.writeErr(c.writes); err != nil {
			lan.mu.Unlock()
			return err
		}
	}
	f, err := ParseFrame(b)
	if err != nil {
		lan.mu.Unlock()
		return err
	}
	lan.sent = append(lan.sent, f)
	onSend := lan.onSend
	var answers []fakeHost
	for _, h := range lan.hosts {
		if h.ip != f.TargetIP {
			continue
		}
		if !isBroadcast(f) && [6]byte(h.mac) != f.EtherDst {
			continue
		}
		if lan.lose != nil && lan.lose(f, h) {
			c.drops.Add(1)
			continue
		}
		answers = append(answers, h)
	}
	lan.mu.Unlock()
	if onSend != nil {
		onSend(f)
	}
	for _, h := range answers {
		c.deliver(replyFrame(h.mac, h.ip, f.SenderMAC[:], f.SenderIP), h.delay)
	}
	return nil
}

func (c *fakeConn) SetReadDeadline(time.Time) error { return nil }

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// replyFrame builds an unpadded (veth-like) ARP reply.
func replyFrame(smac net.HardwareAddr, sip netip.Addr, tmac net.HardwareAddr, tip netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], tmac)
	copy(b[6:12], smac)
	b[12], b[13] = 0x08, 0x06
	a := b[14:]
	a[0], a[1], a[2], a[3], a[4], a[5] = 0, 1, 0x08, 0, 6, 4
	a[6], a[7] = 0, 2
	copy(a[8:14], smac)
	s4, t4 := sip.As4(), tip.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tmac)
	copy(a[24:28], t4[:])
	return b
}

// fakeTable is a NeighborTable and Topology in memory.
type fakeTable struct {
	mu      sync.Mutex
	entries []Neighbor
	links   []Link
	routes  []Route
	writes  []string // "set 198.18.0.2 02:..", "del 198.18.0.3"
	reads   int
	// beforeRead, if set, runs before each Neighbors call with its number
	// (1 = the snapshot), to simulate the kernel changing entries.
	beforeRead func(n int, t *fakeTable)
	writeErr   error
}

func (t *fakeTable) Neighbors(ctx context.Context) ([]Neighbor, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reads++
	if t.beforeRead != nil {
		t.beforeRead(t.reads, t)
	}
	out := make([]Neighbor, len(t.entries))
	for i, e := range t.entries {
		e.MAC = append(net.HardwareAddr(nil), e.MAC...)
		out[i] = e
	}
	return out, nil
}

// set replaces or adds an entry; t.mu must be held.
func (t *fakeTable) set(n Neighbor) {
	for i := range t.entries {
		if t.entries[i].IP == n.IP && t.entries[i].Ifindex == n.Ifindex {
			t.entries[i] = n
			return
		}
	}
	t.entries = append(t.entries, n)
}

func (t *fakeTable) SetNeighbor(ctx context.Context, n Neighbor) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.writeErr != nil {
		return t.writeErr
	}
	t.writes = append(t.writes, "set "+n.IP.String()+" "+n.MAC.String()+" "+n.State.String())
	t.set(n)
	return nil
}

func (t *fakeTable) DeleteNeighbor(ctx context.Context, n Neighbor) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.writeErr != nil {
		return t.writeErr
	}
	t.writes = append(t.writes, "del "+n.IP.String())
	for i := range t.entries {
		if t.entries[i].IP == n.IP && t.entries[i].Ifindex == n.Ifindex {
			t.entries = append(t.entries[:i], t.entries[i+1:]...)
			break
		}
	}
	return nil
}

func (t *fakeTable) Links(ctx context.Context) ([]Link, error)   { return t.links, nil }
func (t *fakeTable) Routes(ctx context.Context) ([]Route, error) { return t.routes, nil }

// oneLAN returns a table for interface 2 ("fake2", 198.18.0.1/24) with
// the given entries.
func oneLAN(entries ...Neighbor) *fakeTable {
	for i := range entries {
		entries[i].Ifindex, entries[i].Interface = 2, "fake2"
	}
	return &fakeTable{
		entries: entries,
		links: []Link{{Index: 2, Name: "fake2", MAC: net.HardwareAddr{2, 0, 0, 0, 0xff, 2}, Up: true,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}}},
		routes: []Route{{Dst: netip.MustParsePrefix("198.18.0.0/24"), Ifindex: 2,
			Src: netip.MustParseAddr("198.18.0.1")}},
	}
}

var errEPERM = &os.SyscallError{Syscall: "sendmsg", Err: os.ErrPermission}
