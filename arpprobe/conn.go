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

// Listener opens a FrameConn on an interface. ListenARP is the real one.
type Listener func(ifi *net.Interface) (FrameConn, error)
