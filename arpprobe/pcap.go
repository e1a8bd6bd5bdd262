package arpprobe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// pcapSnapLen is the snapshot length written in the file header, as
// tcpdump's default: larger than any frame the prober reads (which it
// cuts at maxFrameBuffer bytes), so every frame is kept whole.
const pcapSnapLen = 262144

// The classic pcap format (see pcap-savefile(5)): a 24-byte file header,
// then a 16-byte record header before each frame, all little-endian here.
const (
	pcapMagic         = 0xa1b2c3d4 // microsecond timestamps
	pcapVersionMajor  = 2
	pcapVersionMinor  = 4
	pcapLinkEthernet  = 1 // LINKTYPE_ETHERNET
	pcapFileHeaderLen = 24
	pcapRecordLen     = 16
)

// A PcapWriter records frames in the classic pcap format (version 2.4,
// microsecond timestamps, link type Ethernet), which tcpdump -r, tshark
// and Wireshark read. The format is small enough to write directly; the
// tests read the files back with github.com/google/gopacket/pcapgo and
// tshark. (Importing gopacket here would cost every program that links
// arpprobe about 6 ms of start-up and several MB of memory for its
// protocol tables, and arpcheck runs every minute.)
//
// Connect it to a Prober with ProberConfig.Tap = pw.Tap(), or to anything
// that opens sockets through a Listener (Ping, PingConfig.Listen) with
// pw.Listener(ListenARP). Frames of every interface go to the one file:
// the classic format has a single link type and no interface field.
//
// Frames are buffered; Flush writes them out. Writes never block the
// prober on an error: the first write error is kept, later frames are
// discarded, and Flush and Err return it. A PcapWriter is safe for
// concurrent use.
type PcapWriter struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	hdr    [pcapRecordLen]byte
	frames int
	err    error
}

// NewPcapWriter writes a pcap file header to w and returns a writer that
// appends frames to it. The caller flushes the PcapWriter and then
// closes w.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var h [pcapFileHeaderLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], pcapMagic)
	le.PutUint16(h[4:], pcapVersionMajor)
	le.PutUint16(h[6:], pcapVersionMinor)
	// h[8:16]: time zone offset and timestamp accuracy, both zero.
	le.PutUint32(h[16:], pcapSnapLen)
	le.PutUint32(h[20:], pcapLinkEthernet)
	if _, err := bw.Write(h[:]); err != nil {
		return nil, fmt.Errorf("arpprobe: pcap: write file header: %w", err)
	}
	// The header goes out at once, so that a run that records nothing
	// still leaves a valid, empty capture.
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("arpprobe: pcap: write file header: %w", err)
	}
	return &PcapWriter{bw: bw}, nil
}

// WriteFrame records one whole Ethernet frame seen or sent at t. It
// returns the writer's first error, if any, and then records nothing.
func (w *PcapWriter) WriteFrame(t time.Time, frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	length := len(frame)
	if len(frame) > pcapSnapLen {
		frame = frame[:pcapSnapLen]
	}
	le := binary.LittleEndian
	le.PutUint32(w.hdr[0:], uint32(t.Unix()))
	le.PutUint32(w.hdr[4:], uint32(t.Nanosecond()/1000))
	le.PutUint32(w.hdr[8:], uint32(len(frame)))
	le.PutUint32(w.hdr[12:], uint32(length))
	if _, err := w.bw.Write(w.hdr[:]); err != nil {
		w.err = fmt.Errorf("arpprobe: pcap: write frame: %w", err)
		return w.err
	}
	if _, err := w.bw.Write(frame); err != nil {
		w.err = fmt.Errorf("arpprobe: pcap: write frame: %w", err)
		return w.err
	}
	w.frames++
	return nil
}

// Tap returns a Tap that records every frame a Prober sends and
// receives, with the time the prober stamped on it. Dropped frames are
// recorded too: a capture shows what arrived, not only what was used.
func (w *PcapWriter) Tap() Tap {
	return func(ev TapEvent) { w.WriteFrame(ev.Time, ev.Frame) }
}

// Listener returns a Listener that opens sockets with l and records
// every frame read from them, and every frame written to them
// successfully, stamped with the time of the read or write. The sockets
// keep l's FrameConnStats, if they have it.
func (w *PcapWriter) Listener(l Listener) Listener {
	return func(ifi *net.Interface) (FrameConn, error) {
		c, err := l(ifi)
		if err != nil {
			return nil, err
		}
		return &pcapConn{FrameConn: c, w: w}, nil
	}
}

// Frames returns how many frames have been recorded.
func (w *PcapWriter) Frames() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frames
}

// Err returns the first error met while writing, if any.
func (w *PcapWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Flush writes the buffered frames to the underlying writer. It returns
// the first error met while writing, now or before.
func (w *PcapWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("arpprobe: pcap: flush: %w", err)
	}
	return w.err
}

// pcapConn is a FrameConn that records what passes through it.
type pcapConn struct {
	FrameConn
	w *PcapWriter
}

var (
	errNoStats         = errors.New("arpprobe: socket keeps no drop statistics")
	errNoWriteDeadline = errors.New("arpprobe: socket has no write deadline")
)

func (c *pcapConn) ReadFrame(b []byte) (int, error) {
	n, err := c.FrameConn.ReadFrame(b)
	if err == nil {
		c.w.WriteFrame(time.Now(), b[:n])
	}
	return n, err
}

func (c *pcapConn) WriteFrame(b []byte) error {
	t := time.Now()
	err := c.FrameConn.WriteFrame(b)
	if err == nil {
		c.w.WriteFrame(t, b)
	}
	return err
}

// SetWriteDeadline passes the deadline on to the wrapped socket, if its
// writes honour one.
func (c *pcapConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.FrameConn.(writeDeadliner); ok {
		return d.SetWriteDeadline(t)
	}
	return errNoWriteDeadline
}

// KernelDrops passes on the wrapped socket's count.
func (c *pcapConn) KernelDrops() (uint64, error) {
	if s, ok := c.FrameConn.(FrameConnStats); ok {
		return s.KernelDrops()
	}
	return 0, errNoStats
}
