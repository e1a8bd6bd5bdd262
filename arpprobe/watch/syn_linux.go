package watch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// synSnap is how much of a frame the SYN filter passes: the Ethernet
// header and the IPv4 source address are in its first 34 bytes.
const synSnap = 64

// synFilter passes the IPv4 TCP segments that open a connection (SYN
// without ACK, not a later fragment), synSnap bytes of each, and drops
// everything else in the kernel: the watcher's cost follows the rate of
// new connections, not the host's traffic.
func synFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 9},
		bpf.LoadAbsolute{Off: 23, Size: 1}, // IPv4 protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_TCP, SkipTrue: 7},
		bpf.LoadAbsolute{Off: 20, Size: 2}, // flags and fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 5},
		bpf.LoadMemShift{Off: 14},               // X: the IPv4 header's length
		bpf.LoadIndirect{Off: 14 + 13, Size: 1}, // TCP flags
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x02, SkipFalse: 1}, // SYN, not ACK
		bpf.RetConstant{Val: synSnap},
		bpf.RetConstant{Val: 0},
	})
}

// parseSYN returns the source MAC and IPv4 address of a frame that
// synFilter passes; ok is false for any other frame (one read before the
// filter was attached).
func parseSYN(b []byte) (mac [6]byte, ip netip.Addr, ok bool) {
	if len(b) < 14+20 || b[12] != 0x08 || b[13] != 0x00 || b[14]>>4 != 4 || b[23] != unix.IPPROTO_TCP {
		return mac, ip, false
	}
	ihl := int(b[14]&0x0f) * 4
	if ihl < 20 || b[20]&0x1f != 0 || b[21] != 0 || len(b) < 14+ihl+14 || b[14+ihl+13]&0x12 != 0x02 {
		return mac, ip, false
	}
	copy(mac[:], b[6:12])
	return mac, netip.AddrFrom4([4]byte(b[26:30])), true
}

// onSubnet reports whether ip is on one of prefixes' subnets and not
// one of their addresses: a frame from it came straight from its host,
// not through a router, whose MAC it would carry.
func onSubnet(ip netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Addr().Is4() && p.Bits() < 32 && p.Masked().Contains(ip) && p.Addr() != ip {
			return true
		}
	}
	return false
}

// listenSYN opens a socket on ifi that receives, through synFilter, the
// frames opening TCP connections. It needs CAP_NET_RAW, as the prober's
// sockets do.
func listenSYN(ifi *net.Interface) (*packet.Conn, error) {
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
	if err != nil {
		return nil, fmt.Errorf("watch: listen for TCP SYN on %s: %w", ifi.Name, err)
	}
	prog, err := synFilter()
	if err == nil {
		err = c.SetBPF(prog)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("watch: TCP SYN filter on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// parseIPv4Source returns the source MAC and IPv4 address of a frame
// that the mismatch filter passes: any IPv4 frame.
func parseIPv4Source(b []byte) (mac [6]byte, ip netip.Addr, ok bool) {
	if len(b) < 14+20 || b[12] != 0x08 || b[13] != 0x00 || b[14]>>4 != 4 {
		return mac, ip, false
	}
	copy(mac[:], b[6:12])
	return mac, netip.AddrFrom4([4]byte(b[26:30])), true
}

// readIPv4 reads c until it is closed, and hands the watcher each frame
// that parse takes (a SYN, or with the mismatch filter any IPv4 frame) as
// a sighting; the watcher's loop keeps only those from the interface's
// own subnets (see onSubnet).
func (w *Watcher) readIPv4(c *packet.Conn, ifindex int, parse func([]byte) ([6]byte, netip.Addr, bool)) {
	buf := make([]byte, synSnap)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		mac, ip, ok := parse(buf[:n])
		if !ok {
			continue
		}
		w.sight(sighting{ifindex: ifindex, ip: ip, mac: mac, at: time.Now(), cause: CauseIPv4})
	}
}

// closeSYNs closes the TCP SYN sockets, which ends their readers.
func (l *loop) closeSYNs() {
	for i, c := range l.syns {
		c.Close()
		delete(l.syns, i)
	}
	if l.mismatch != nil {
		l.mismatch.Close()
		l.mismatch = nil
	}
}

// listenSYN opens, once per interface, the socket that sees TCP SYNs
// from the interface's subnets (see CauseIPv4), in the watcher's
// namespace, with a reader that queues sightings.
func (l *loop) listenSYN(ifindex int) error {
	if l.syns[ifindex] != nil {
		return nil
	}
	ifi, err := l.w.interfaceByIndex(ifindex) // run in the watcher's namespace
	if err != nil {
		return fmt.Errorf("watch: interface %d: %w", ifindex, err)
	}
	l.loadMismatch()
	var c *packet.Conn
	if err := l.w.pin.do(func() (err error) { c, err = listenSYN(ifi); return err }); err != nil {
		return err
	}
	parse := parseSYN
	if f := l.mismatch; f != nil {
		rc, err := c.SyscallConn()
		if err == nil {
			cerr := rc.Control(func(fd uintptr) { err = f.attach(int(fd)) })
			err = errors.Join(cerr, err)
		}
		if err != nil {
			c.Close()
			return err
		}
		parse = parseIPv4Source
	}
	if l.syns == nil {
		l.syns = make(map[int]*packet.Conn)
	}
	l.syns[ifindex] = c
	go l.w.readIPv4(c, ifindex, parse)
	return nil
}
