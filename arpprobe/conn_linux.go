package arpprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// DefaultReadBuffer is the size, in bytes, of the receive ring that
// ListenARP maps, libpcap's default: room for about 14,500 ARP frames
// that pass the socket filter, so neither a burst of replies to a large
// probe nor a storm is dropped while the reader is busy for a moment. It
// counts in the process's resident memory.
const DefaultReadBuffer = 2 << 20

// ListenConfig holds the options of a socket opened by its Listen method.
// The zero value is the configuration ListenARP uses.
type ListenConfig struct {
	// Requests makes the socket receive ARP requests as well as replies,
	// for passive listening. By default (false) the kernel passes only
	// replies to the socket.
	Requests bool

	// ReadBuffer is the size in bytes of the memory-mapped receive ring
	// (TPACKET_V3) that the kernel copies received frames into. Zero
	// means DefaultReadBuffer. A negative value maps no ring: frames wait
	// in the socket's ordinary queue, of the kernel's default size
	// (net.core.rmem_default), and each read is a system call — cheaper
	// for a socket that only sends.
	ReadBuffer int

	// ClassicFilter keeps the classic BPF socket filter even when the
	// process may load the eBPF one that counts what it rejects
	// (Stats.Rejected; see ebpf_linux.go).
	ClassicFilter bool
}

// ListenARP opens an AF_PACKET socket on ifi that receives IPv4 ARP
// replies and sends whole Ethernet frames. It is ListenConfig{}.Listen:
// replies only, a DefaultReadBuffer receive buffer. It needs CAP_NET_RAW.
func ListenARP(ifi *net.Interface) (FrameConn, error) {
	return ListenConfig{}.Listen(ifi)
}

// Listen opens an AF_PACKET raw socket bound to ETH_P_ARP on ifi. It needs
// CAP_NET_RAW in the network namespace of the calling thread, where the
// socket then lives for good; once open, the socket may be used from any
// goroutine.
//
// A socket filter (see bpf.go), attached before the socket is bound, lets
// through only untagged IPv4-over-Ethernet ARP replies addressed to ifi
// (and requests, when lc.Requests is set) from a unicast sender MAC: the
// kernel drops other frames before they are queued, so nothing else costs
// a copy or a wake-up. Frames sent through the socket are not received by
// it.
//
// Received frames go to a memory-mapped TPACKET_V3 ring (see
// ListenConfig.ReadBuffer and ring_linux.go), as libpcap receives them: a
// read costs no system call while frames are waiting, and the reader
// wakes once per block of frames, not once per frame.
//
// The FrameConn returned also implements FrameConnStats and BatchWriter,
// and has a SetWriteDeadline method: a write blocked on a full send buffer
// returns a timeout error once the deadline passes. With a ring it also
// hands frames over a block at a time, with the kernel's arrival times
// (the prober's reader uses that). Its ReadFrame, WriteFrame and
// WriteFrames do not allocate. Its errors are net.Errors: a deadline gives
// one for which os.IsTimeout is true; after Close, errors.Is(err,
// net.ErrClosed) is true. When ifi goes down, ReadFrame returns an error
// wrapping syscall.ENETDOWN once, then waits for frames again (the
// socket receives again once ifi is up); WriteFrame fails with ENETDOWN
// while ifi is down and with ENXIO once it is gone.
//
// Listen fails with an error wrapping syscall.ENETDOWN if ifi is down,
// and for which errors.Is(err, os.ErrPermission) is true without
// CAP_NET_RAW.
func (lc ListenConfig) Listen(ifi *net.Interface) (FrameConn, error) {
	if ifi == nil {
		return nil, errors.New("arpprobe: listen: no interface")
	}
	if ifi.Index <= 0 {
		return nil, fmt.Errorf("arpprobe: listen on %s: invalid interface index %d", ifi.Name, ifi.Index)
	}
	filter, err := arpFilter(ifi.Index, lc.Requests)
	if err != nil {
		return nil, err
	}
	// Bound to the interface with protocol 0 first, the socket receives
	// nothing while its filter and ring are set up; bound to ETH_P_ARP
	// at the end, every frame it takes goes through them, so the ring's
	// counts are exact (caughtUp).
	pc, err := packet.Listen(ifi, packet.Raw, 0, &packet.Config{Filter: filter})
	if err != nil {
		return nil, listenError(ifi, err)
	}
	c, err := newPacketConn(pc, ifi)
	if err != nil {
		pc.Close()
		return nil, err
	}
	var fc FrameConn = c
	if !lc.ClassicFilter {
		// The counting filter where the process may load it
		// (CAP_BPF); the classic one, already attached, otherwise.
		if f, err := loadCountingFilter(ifi.Index, lc.Requests); err == nil {
			var aerr error
			if err := c.rc.Control(func(fd uintptr) { aerr = f.attach(int(fd)) }); err == nil && aerr == nil {
				c.filter = f
			} else {
				f.Close()
			}
		}
	}
	if lc.ReadBuffer >= 0 {
		size := lc.ReadBuffer
		if size == 0 {
			size = DefaultReadBuffer
		}
		var rerr error
		if err := c.rc.Control(func(fd uintptr) { c.ring, rerr = setupRing(int(fd), size) }); err == nil {
			err = rerr
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("arpprobe: listen on %s: %w", ifi.Name, err)
		}
		c.waitFn = c.waitBlock
		fc = ringConn{c}
	}
	if err := c.bindARP(ifi); err != nil {
		c.Close()
		return nil, err
	}
	return fc, nil
}

// bindARP binds the socket to ETH_P_ARP on ifi: from now on it receives.
// If ifi is down, bind(2) leaves ENETDOWN in the socket's error, which
// this reports.
func (c *packetConn) bindARP(ifi *net.Interface) error {
	var berr, optErr error
	var soErr int
	err := c.rc.Control(func(fd uintptr) {
		berr = unix.Bind(int(fd), &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(etherTypeARP)})
		if berr == nil {
			soErr, optErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		}
	})
	switch {
	case err != nil:
		return fmt.Errorf("arpprobe: listen on %s: %w", ifi.Name, err)
	case berr != nil:
		return listenError(ifi, berr)
	case optErr != nil:
		return fmt.Errorf("arpprobe: listen on %s: set up socket: %w", ifi.Name, optErr)
	case soErr != 0:
		return listenError(ifi, unix.Errno(soErr))
	}
	return nil
}

// listenError says what a failed socket(2) or bind(2) means for the
// user, keeping the errno inspectable.
func listenError(ifi *net.Interface, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.EPERM, unix.EACCES:
			return &CapabilityError{Capability: "CAP_NET_RAW",
				Err: fmt.Errorf("arpprobe: listen on %s: raw sockets need CAP_NET_RAW: %w", ifi.Name, errno)}
		case unix.ENODEV, unix.ENXIO:
			return fmt.Errorf("arpprobe: listen on %s: no interface with index %d in this network namespace: %w", ifi.Name, ifi.Index, errno)
		case unix.ENETDOWN:
			return fmt.Errorf("arpprobe: listen on %s: interface is down: %w", ifi.Name, errno)
		}
	}
	return fmt.Errorf("arpprobe: listen on %s: %w", ifi.Name, err)
}

// packetConn is the FrameConn of ListenARP.
//
// Reads and writes go through the socket's syscall.RawConn, so they wait
// in the runtime's netpoller and honour deadlines, with callbacks built
// once in newPacketConn: ReadFrame, WriteFrame and WriteFrames pass their
// buffers and get their results through fields, which is why reading, and
// writing, may each be done by only one goroutine at a time (as FrameConn
// says).
type packetConn struct {
	pc     *packet.Conn
	rc     syscall.RawConn
	ifname string
	closed atomic.Bool

	// The receive ring, if any. rmu is held by the reader (ReadFrame,
	// ReadBatch) and mapMu by through, so that Close unmaps the ring
	// only when neither can touch it.
	ring  *rxRing
	rmu   sync.Mutex
	mapMu sync.RWMutex

	// filter is the counting eBPF filter, or nil for the classic one.
	filter *countingFilter

	// The kernel's counts since Listen (pollStats), and the drops that
	// KernelDrops has reported.
	statsMu        sync.Mutex
	accepts, drops uint64
	// stats is pollStats' getsockopt, and statsFn its method value
	// bound once, so that reading the counters allocates nothing.
	stats     statsCall
	statsFn   func(fd uintptr)
	dropsTold uint64

	// Owned by the reader.
	readFn func(fd uintptr) bool
	waitFn func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rerr   error

	// Owned by the writer.
	writeFn func(fd uintptr) bool
	wbuf    []byte
	werr    error
	to      unix.SockaddrLinklayer // ifindex, ETH_P_ARP, destination MAC
	batch   *writeBatch
}

// writeBatch is the state of WriteFrames: one sendmmsg(2) vector, built
// once, whose entries point at the caller's frames during a call.
type writeBatch struct {
	fn   func(fd uintptr) bool
	msgs [maxWriteBatch]unix.Mmsghdr
	iovs [maxWriteBatch]unix.Iovec
	n    int // entries in use
	sent int // entries sent so far
	err  error
}

// maxWriteBatch is how many frames one sendmmsg(2) call sends at most.
const maxWriteBatch = 64

var (
	_ FrameConnStats = (*packetConn)(nil)
	_ BatchWriter    = (*packetConn)(nil)
	_ writeDeadliner = (*packetConn)(nil)
)

func newPacketConn(pc *packet.Conn, ifi *net.Interface) (*packetConn, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("arpprobe: listen on %s: %w", ifi.Name, err)
	}
	c := &packetConn{
		pc:     pc,
		rc:     rc,
		ifname: ifi.Name,
		to: unix.SockaddrLinklayer{
			Ifindex:  ifi.Index,
			Protocol: htons(etherTypeARP),
			Halen:    6,
		},
	}
	c.readFn = c.read
	c.writeFn = c.write
	c.statsFn = c.stats.call
	c.batch = &writeBatch{}
	c.batch.fn = c.writeBatch
	for i := range c.batch.msgs {
		// No address: the frames go out on the interface the socket is
		// bound to, with its protocol, ETH_P_ARP.
		c.batch.msgs[i].Hdr.Iov = &c.batch.iovs[i]
		c.batch.msgs[i].Hdr.Iovlen = 1
	}
	return c, nil
}

// htons returns v with its bytes in network order in memory.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// ReadFrame reads one frame into b and returns its length; a frame longer
// than b is cut to len(b). It blocks until a frame arrives, the read
// deadline passes or the socket is closed.
func (c *packetConn) ReadFrame(b []byte) (int, error) {
	if c.ring != nil {
		return c.ringReadFrame(b)
	}
	c.rbuf = b
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err == nil {
		err = c.rerr
	}
	if err != nil {
		return 0, c.error("read", err)
	}
	return c.rn, nil
}

// read is readFn: one read(2), or false to wait for the socket to be
// readable. read(2) rather than recvfrom(2): the sender's address is in
// the frame, and unix.Recvfrom would allocate one.
func (c *packetConn) read(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), c.rbuf)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rn, c.rerr = n, err
		return true
	}
}

// WriteFrame sends b, a whole Ethernet frame from its destination MAC on,
// as it is: the kernel adds no header and no padding (veth sends 42-byte
// frames as they are; a NIC pads them). It blocks only while the socket's
// send buffer is full.
func (c *packetConn) WriteFrame(b []byte) error {
	if len(b) < etherHeaderLen {
		return &connError{op: "write", ifname: c.ifname, err: fmt.Errorf("frame of %d bytes is shorter than an Ethernet header", len(b))}
	}
	// For SOCK_RAW the kernel takes the destination from the frame and
	// ignores sll_addr; it is set so that the address is honest in traces.
	copy(c.to.Addr[:6], b[0:6])
	c.wbuf = b
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if err == nil {
		err = c.werr
	}
	if err != nil {
		return c.error("write", err)
	}
	return nil
}

// write is writeFn: one sendto(2) to the prepared address, or false to
// wait for room in the send buffer.
func (c *packetConn) write(fd uintptr) bool {
	for {
		err := unix.Sendto(int(fd), c.wbuf, 0, &c.to)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.werr = err
		return true
	}
}

// WriteFrames sends frames with as few sendmmsg(2) calls as it can (64
// frames a call at most); see BatchWriter. It does not allocate.
func (c *packetConn) WriteFrames(frames [][]byte) (int, error) {
	wb := c.batch
	sent := 0
	for sent < len(frames) {
		n := min(len(frames)-sent, maxWriteBatch)
		for i, f := range frames[sent : sent+n] {
			if len(f) < etherHeaderLen {
				// Send what comes before, then fail on this one.
				n = i
				break
			}
			wb.iovs[i].Base = &f[0]
			wb.iovs[i].SetLen(len(f))
		}
		if n == 0 {
			return sent, c.WriteFrame(frames[sent])
		}
		wb.n, wb.sent, wb.err = n, 0, nil
		err := c.rc.Write(wb.fn)
		for i := range n {
			wb.iovs[i].Base = nil // do not keep the caller's frames alive
		}
		sent += wb.sent
		if err == nil {
			err = wb.err
		}
		if err != nil {
			return sent, c.error("write", err)
		}
	}
	return sent, nil
}

// writeBatch is the batch's fn: sendmmsg(2) until every entry is sent,
// or false to wait for room in the send buffer. sendmmsg returns the count
// sent and drops the error of the entry that failed, so the call after a
// short count is the one that reports it.
func (c *packetConn) writeBatch(fd uintptr) bool {
	wb := c.batch
	for wb.sent < wb.n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&wb.msgs[wb.sent])), uintptr(wb.n-wb.sent), 0, 0, 0)
		switch errno {
		case 0:
			wb.sent += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			wb.err = errno
			return true
		}
	}
	return true
}

// SetWriteDeadline sets the time after which a WriteFrame or WriteFrames
// waiting for room in the send buffer returns a timeout error; the zero
// time means no deadline.
func (c *packetConn) SetWriteDeadline(t time.Time) error {
	if err := c.pc.SetWriteDeadline(t); err != nil {
		return c.error("set write deadline", err)
	}
	return nil
}

// SetReadDeadline sets the time after which a waiting ReadFrame returns
// a timeout error; the zero time means no deadline.
func (c *packetConn) SetReadDeadline(t time.Time) error {
	if err := c.pc.SetReadDeadline(t); err != nil {
		return c.error("set read deadline", err)
	}
	return nil
}

// KernelDrops returns how many frames the kernel dropped, for want of
// room in the receive ring or buffer, since the last call (or since
// Listen). It is one system call, safe for concurrent use, and does not
// allocate.
func (c *packetConn) KernelDrops() (uint64, error) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	if err := c.pollStats(); err != nil {
		return 0, err
	}
	n := c.drops - c.dropsTold
	c.dropsTold = c.drops
	return n, nil
}

// accepted returns how many frames the kernel has put in the receive
// ring (or queue) since Listen. It is one system call.
func (c *packetConn) accepted() (uint64, error) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	if err := c.pollStats(); err != nil {
		return 0, err
	}
	return c.accepts, nil
}

// pollStats reads the socket's PACKET_STATISTICS, which the kernel
// resets on every read, into the conn's running totals; c.statsMu is
// held. Nothing else in this package reads them.
func (c *packetConn) pollStats() error {
	if err := c.rc.Control(c.statsFn); err != nil {
		return c.error("read statistics", err)
	}
	if c.stats.errno != 0 {
		return c.error("read statistics", c.stats.errno)
	}
	st := &c.stats.st
	c.accepts += uint64(st[0] - st[1])
	c.drops += uint64(st[1])
	return nil
}

// statsCall is one getsockopt(PACKET_STATISTICS) with its result: struct
// tpacket_stats_v3, packets (dropped ones included), drops and
// freeze_q_cnt. A socket without a ring fills the first two (struct
// tpacket_stats).
type statsCall struct {
	st    [3]uint32
	errno unix.Errno
}

// call reads the statistics of the socket fd into s.
func (s *statsCall) call(fd uintptr) {
	s.st = [3]uint32{}
	size := uint32(unsafe.Sizeof(s.st))
	_, _, s.errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&s.st)), uintptr(unsafe.Pointer(&size)), 0)
}

// errNotCounted is what kernelRejects says when the classic filter is
// in use: the kernel cannot count what it rejects.
var errNotCounted = errors.New("the classic socket filter counts nothing")

// kernelRejects returns what the counting filter rejected since Listen,
// by reason.
func (c *packetConn) kernelRejects() ([numDropReasons]uint64, error) {
	if c.filter == nil {
		return [numDropReasons]uint64{}, errNotCounted
	}
	return c.filter.rejects()
}

// Close closes the socket; a waiting ReadFrame returns an error for which
// errors.Is(err, net.ErrClosed) is true. Closing twice is an error.
func (c *packetConn) Close() error {
	if c.closed.Swap(true) {
		return &connError{op: "close", ifname: c.ifname, err: net.ErrClosed}
	}
	err := c.pc.Close() // wakes a waiting reader
	if c.filter != nil {
		err = errors.Join(err, c.filter.Close())
	}
	if c.ring != nil {
		c.rmu.Lock()
		c.mapMu.Lock()
		if uerr := c.ring.unmap(); err == nil {
			err = uerr
		}
		c.mapMu.Unlock()
		c.rmu.Unlock()
	}
	if err != nil {
		return &connError{op: "close", ifname: c.ifname, err: err}
	}
	return nil
}

// error turns an error of the socket into a connError that says what it
// means. The packet package's wrapping adds nothing a user needs, so the
// cause is reduced to the errno, the deadline or the closed socket.
func (c *packetConn) error(op string, err error) error {
	e := &connError{op: op, ifname: c.ifname, err: err}
	var errno unix.Errno
	switch {
	case c.closed.Load():
		e.err = net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		e.err = os.ErrDeadlineExceeded
	case errors.As(err, &errno):
		e.err = errno
		switch errno {
		case unix.ENETDOWN:
			e.hint = "interface is down"
		case unix.ENXIO, unix.ENODEV:
			e.hint = "interface is gone"
		case unix.EMSGSIZE:
			e.hint = "frame longer than the interface's MTU"
		case unix.ENOBUFS:
			e.hint = "transmit queue full"
		}
	}
	return e
}

// connError is an error of a socket opened by Listen: what was done on
// which interface, what the cause means there, and the cause. It is a
// net.Error; Timeout reports a passed deadline.
type connError struct {
	op     string
	ifname string
	hint   string
	err    error
}

var _ net.Error = (*connError)(nil)

func (e *connError) Error() string {
	s := "arpprobe: " + e.op + " on " + e.ifname + ": "
	if e.hint != "" {
		s += e.hint + ": "
	}
	return s + e.err.Error()
}

func (e *connError) Unwrap() error   { return e.err }
func (e *connError) Timeout() bool   { return errors.Is(e.err, os.ErrDeadlineExceeded) }
func (e *connError) Temporary() bool { return e.Timeout() }
