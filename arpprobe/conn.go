package arpprobe

import (
	"net"
	"time"
)

// FrameConn is what the prober needs of a raw Ethernet socket that is
// bound to one interface and receives ARP frames. The Linux implementation
// is an AF_PACKET socket with a BPF filter (see Listen); tests use fakes.
//
// A FrameConn is used by one reader goroutine and one writer goroutine at
// a time.
type FrameConn interface {
	// ReadFrame reads one whole Ethernet frame into b and returns its
	// length. It honours the read deadline.
	ReadFrame(b []byte) (int, error)
	// WriteFrame sends one whole Ethernet frame, header included.
	WriteFrame(b []byte) error
	// SetReadDeadline sets the deadline for ReadFrame; a blocked
	// ReadFrame returns an error for which os.IsTimeout is true.
	SetReadDeadline(t time.Time) error
	// Close closes the socket; a blocked ReadFrame returns.
	Close() error
}

// FrameConnStats is an optional interface of a FrameConn that can report
// how many frames the kernel dropped because the socket's receive buffer
// was full since the last call.
type FrameConnStats interface {
	KernelDrops() (uint64, error)
}

// writeDeadliner is an optional interface of a FrameConn whose writes
// honour a deadline: a write blocked while the socket's send buffer is
// full returns an error for which os.IsTimeout is true once it passes.
// The FrameConn of Listen implements it; the prober uses it to end a
// run on time when the interface's transmit queue does not drain.
type writeDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// rejectCounter is the optional interface of a FrameConn that can say
// how many frames its kernel filter rejected, by reason, since Listen.
type rejectCounter interface {
	kernelRejects() ([numDropReasons]uint64, error)
}

// batchReader is an optional interface of a FrameConn that hands the
// frames it receives over in batches, each with the time it arrived in the
// kernel, and can tell whether the reader has dealt with every frame the
// kernel received: a silence can be judged only once the reader has seen
// everything that arrived before the window closed. The FrameConn of
// Listen implements it (it reads from a memory-mapped ring, whose frames
// the kernel hands over a block at a time).
type batchReader interface {
	// ReadBatch blocks until frames arrive (or the deadline passes, or
	// the conn is closed), then calls fn for each; a frame is valid only
	// during fn.
	ReadBatch(fn func(frame []byte, at time.Time)) error
	// caughtUp reports whether every frame that has arrived until now
	// was passed to fn by a ReadBatch call that has returned. Safe for
	// concurrent use.
	caughtUp() bool
}

// Listener opens a FrameConn on an interface. ListenARP is the real one.
type Listener func(ifi *net.Interface) (FrameConn, error)
