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

// link is one interface's socket, shared by every run of a Prober: one
// reader goroutine matches each received reply to the probes waiting for
// its sender address.
type link struct {
	ifindex int
	name    string
	mac     [6]byte
	conn    FrameConn
	tap     Tap
	// template is a broadcast request from this interface's MAC, patched
	// for each request sent.
	template []byte

	wmu sync.Mutex // serialises writes

	mu sync.RWMutex
	// pending holds the probes waiting for replies, by sender IPv4
	// address: the first one registered, chained to the others (of other
	// runs) by peerProbe.nextPending.
	pending map[uint32]*peerProbe
	err     error // set once the reader failed

	received atomic.Uint64
	dropped  [numDropReasons]atomic.Uint64
	requests atomic.Uint64 // ARP requests seen (only when asked for)

	// stats, if the conn has it, says how many received frames the
	// kernel dropped; kdrops adds up what it said (pollDrops).
	stats  FrameConnStats
	kdrops atomic.Uint64
	// arrivals is the conn as a batchReader, or nil.
	arrivals batchReader

	done chan struct{} // closed when the reader returns
}

func ipKey(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// readLoop runs until the conn fails or is closed. It does not allocate
// per frame unless a frame is a first reply from a MAC.
func (l *link) readLoop() {
	defer close(l.done)
	var f Frame
	var err error
	if l.arrivals != nil {
		handle := func(b []byte, at time.Time) { l.handle(b, at, &f) }
		for err == nil || isTimeout(err) {
			err = l.arrivals.ReadBatch(handle)
		}
	} else {
		buf := make([]byte, maxFrameBuffer)
		for err == nil || isTimeout(err) {
			var n int
			if n, err = l.conn.ReadFrame(buf); err == nil {
				l.handle(buf[:n], time.Now(), &f)
			}
		}
	}
	l.fail(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle parses, counts and delivers one received frame that arrived at
// at; f is the reader's parse buffer.
func (l *link) handle(b []byte, at time.Time, f *Frame) {
	l.received.Add(1)
	r := parseFrame(b, f)
	if r == DropNone && f.VLAN != 0 {
		// The kernel hands a socket its interface's frames untagged;
		// a tag left in the data belongs to another VLAN's LAN.
		r = DropVLAN
	}
	if l.tap != nil {
		l.tap(TapEvent{Ifindex: l.ifindex, Time: at, Frame: b, Parsed: f, Drop: r})
	}
	if r != DropNone {
		l.dropped[r].Add(1)
		return
	}
	if f.Op == opRequest {
		l.requests.Add(1)
		return
	}
	l.deliver(f, at)
}

// deliver hands a reply to every probe waiting for its sender address.
func (l *link) deliver(f *Frame, now time.Time) {
	l.mu.RLock()
	asked := false
	for pp := l.pending[ipKey(f.SenderIP)]; pp != nil; pp = pp.nextPending {
		asked = pp.run.onReply(pp, f.SenderMAC, now) || asked
	}
	l.mu.RUnlock()
	if !asked {
		l.dropped[DropUnsolicited].Add(1)
	}
}

// fail records the reader's error and ends every probe waiting on this
// link with verdict unknown.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err // the conn's errors name the operation and interface
	}
	var all []*peerProbe
	for _, pp := range l.pending {
		for ; pp != nil; pp = pp.nextPending {
			all = append(all, pp)
		}
	}
	reason := l.err.Error()
	l.mu.Unlock()
	for _, pp := range all {
		pp.run.giveUp(pp, reason)
	}
}

func (l *link) register(pp *peerProbe) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	// At the end of the chain, so replies reach runs in the order they
	// registered; a chain is longer than one only while several runs ask
	// for the same address.
	k := ipKey(pp.peer.IP)
	pp.nextPending = nil
	last := l.pending[k]
	if last == nil {
		l.pending[k] = pp
		return nil
	}
	for last.nextPending != nil {
		last = last.nextPending
	}
	last.nextPending = pp
	return nil
}

func (l *link) unregister(pp *peerProbe) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := ipKey(pp.peer.IP)
	head := l.pending[k]
	for next := &head; *next != nil; next = &(*next).nextPending {
		if *next == pp {
			*next = pp.nextPending
			pp.nextPending = nil
			break
		}
	}
	if head == nil {
		delete(l.pending, k)
	} else {
		l.pending[k] = head
	}
}

// writeFrames sends frames in order, with WriteFrames when the conn is a
// BatchWriter and a WriteFrame each otherwise. It returns how many were
// sent; when fewer than all, err is the error of the first not sent.
//
// A write blocks while the socket's send buffer is full, for as long as
// the interface's transmit queue does not drain. When ctx ends, a write
// deadline in the past cuts it short (if the conn honours one) with an
// error for which os.IsTimeout is true; the deadline is cleared before
// writeFrames returns, so the next write, of this run or another, is not
// cut.
func (l *link) writeFrames(ctx context.Context, frames [][]byte) (sent int, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if d, ok := l.conn.(writeDeadliner); ok && ctx.Done() != nil {
		var mu sync.Mutex
		cut := false
		stop := context.AfterFunc(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			cut = true
			d.SetWriteDeadline(time.Unix(1, 0))
		})
		defer func() {
			if stop() {
				return // never ran: no deadline was set
			}
			mu.Lock() // wait for it to have set the deadline
			defer mu.Unlock()
			if cut {
				d.SetWriteDeadline(time.Time{})
			}
		}()
	}
	if bw, ok := l.conn.(BatchWriter); ok {
		return bw.WriteFrames(frames)
	}
	for _, f := range frames {
		if err := l.conn.WriteFrame(f); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// pollDrops adds what the kernel dropped since the last poll to kdrops
// and returns the total: one system call, when the conn can tell.
func (l *link) pollDrops() uint64 {
	if l.stats != nil {
		if n, err := l.stats.KernelDrops(); err == nil && n > 0 {
			return l.kdrops.Add(n)
		}
	}
	return l.kdrops.Load()
}

// caughtUp reports whether the reader has dealt with every frame that
// arrived until now: true unless the conn hands frames over in batches
// and says otherwise (batchReader).
func (l *link) caughtUp() bool {
	return l.arrivals == nil || l.arrivals.caughtUp()
}

// failed reports the reader's error, if it has stopped.
func (l *link) failed() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.err
}

// counters returns the link's receive counters.
func (l *link) counters() (s Stats) {
	s.Received = l.received.Load()
	for i := range s.Dropped {
		s.Dropped[i] = l.dropped[i].Load()
	}
	return s
}

// permissionError marks errors caused by a missing capability; it keeps
// errors.Is(err, os.ErrPermission) true through the wrapped cause.
func isPermission(err error) bool { return errors.Is(err, os.ErrPermission) }
