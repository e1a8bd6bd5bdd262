package fake

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// host answers requests for ip from mac, its reply arriving after delay.
type host struct {
	ip    netip.Addr
	mac   net.HardwareAddr
	delay time.Duration
}

// LAN is one broadcast domain behind fake FrameConns: its hosts answer
// requests for their address, broadcast ones and unicast ones sent to
// their MAC, like a kernel with arp_ignore=1. The zero value is an
// empty LAN, ready to use.
type LAN struct {
	// OnSend, if set, is called with each frame a prober writes. Set it
	// before the LAN's first use.
	OnSend func(arpprobe.Frame)

	mu    sync.Mutex
	hosts []host
	sent  []arpprobe.Frame
	conns []*conn
}

// Add puts a host on the LAN that answers requests for ip from mac; its
// replies arrive after delay.
func (lan *LAN) Add(ip string, mac net.HardwareAddr, delay time.Duration) {
	lan.mu.Lock()
	defer lan.mu.Unlock()
	lan.hosts = append(lan.hosts, host{netip.MustParseAddr(ip), mac, delay})
}

// Remove takes every host answering for ip off the LAN.
func (lan *LAN) Remove(ip string) {
	a := netip.MustParseAddr(ip)
	lan.mu.Lock()
	defer lan.mu.Unlock()
	lan.hosts = slices.DeleteFunc(lan.hosts, func(h host) bool { return h.ip == a })
}

// Config returns a ProberConfig whose sockets are on the LAN: every
// index from 1 to 200 is an interface "fake<index mod 10>" with MAC
// 02:00:00:00:ff:<index>.
func (lan *LAN) Config() arpprobe.ProberConfig {
	return arpprobe.ProberConfig{
		Listen: func(ifi *net.Interface) (arpprobe.FrameConn, error) {
			c := &conn{lan: lan, rx: make(chan []byte, 4096), closed: make(chan struct{})}
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

// Inject delivers a copy of the raw frame b to every socket, as if it
// came off the wire.
func (lan *LAN) Inject(b []byte) {
	lan.mu.Lock()
	conns := lan.conns
	lan.mu.Unlock()
	for _, c := range conns {
		c.deliver(slices.Clone(b), 0)
	}
}

// Count returns how many of the frames written so far satisfy pred.
func (lan *LAN) Count(pred func(arpprobe.Frame) bool) int {
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

// Sockets returns how many sockets were opened on the LAN, and how many
// of them are still open.
func (lan *LAN) Sockets() (opened, open int) {
	lan.mu.Lock()
	defer lan.mu.Unlock()
	for _, c := range lan.conns {
		select {
		case <-c.closed:
		default:
			open++
		}
	}
	return len(lan.conns), open
}

// IsBroadcast reports whether f went to the Ethernet broadcast address.
func IsBroadcast(f arpprobe.Frame) bool {
	return f.EtherDst == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
}

// conn is a socket on a LAN.
type conn struct {
	lan    *LAN
	rx     chan []byte
	closed chan struct{}
	once   sync.Once
}

func (c *conn) deliver(b []byte, delay time.Duration) {
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

func (c *conn) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-c.rx:
		return copy(b, f), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

// WriteFrame records the frame and has every host it reaches answer.
func (c *conn) WriteFrame(b []byte) error {
	f, err := arpprobe.ParseFrame(b)
	if err != nil {
		return err
	}
	lan := c.lan
	lan.mu.Lock()
	lan.sent = append(lan.sent, f)
	var answers []host
	for _, h := range lan.hosts {
		if h.ip == f.TargetIP && (IsBroadcast(f) || [6]byte(h.mac) == f.EtherDst) {
			answers = append(answers, h)
		}
	}
	lan.mu.Unlock()
	if lan.OnSend != nil {
		lan.OnSend(f)
	}
	for _, h := range answers {
		c.deliver(ReplyFrame(h.mac, h.ip, f.SenderMAC[:], f.SenderIP), h.delay)
	}
	return nil
}

func (c *conn) SetReadDeadline(time.Time) error { return nil }

func (c *conn) KernelDrops() (uint64, error) { return 0, nil }

func (c *conn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// ReplyFrame builds an unpadded (veth-like) ARP reply from smac, sip to
// tmac, tip.
func ReplyFrame(smac net.HardwareAddr, sip netip.Addr, tmac net.HardwareAddr, tip netip.Addr) []byte {
	return Frame(2, smac, smac, sip, tmac, tmac, tip)
}

// Frame builds an unpadded ARP frame of operation op (1 request, 2
// reply) from Ethernet source src to destination dst, with sender sha,
// spa and target tha, tpa.
func Frame(op uint16, src, sha net.HardwareAddr, spa netip.Addr, dst, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	b[12], b[13] = 0x08, 0x06
	a := b[14:]
	a[0], a[1], a[2], a[3], a[4], a[5] = 0, 1, 0x08, 0, 6, 4
	a[6], a[7] = byte(op>>8), byte(op)
	copy(a[8:14], sha)
	s4, t4 := spa.As4(), tpa.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tha)
	copy(a[24:28], t4[:])
	return b
}
