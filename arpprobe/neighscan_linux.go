package arpprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// neighScanner is a rtnetlink socket of its own for Kernel.ScanNeighbors,
// with a request and a receive buffer it reuses, so that a dump of the
// table allocates nothing: a Watcher without the tracer reads the table
// four times a second, and on a table of thousands of entries the
// garbage of a general netlink reader (a buffer and a message list per
// read) was most of what watching cost.
type neighScanner struct {
	mu   sync.Mutex
	sock *nl.NetlinkSocket
	seq  uint32
	req  [unix.NLMSG_HDRLEN + unix.SizeofNdMsg]byte
	buf  []byte
	pfd  []unix.PollFd
	n    Neighbor // the entry passed to fn
}

// scanBufferSize is the receive buffer: the kernel puts one dump message
// batch of at most 32 KiB in each read.
const scanBufferSize = 64 << 10

func newNeighScanner(sock *nl.NetlinkSocket) *neighScanner {
	return &neighScanner{sock: sock, buf: make([]byte, scanBufferSize),
		pfd: []unix.PollFd{{Fd: int32(sock.GetFd()), Events: unix.POLLIN}}}
}

func (s *neighScanner) Close() { s.sock.Close() }

// scan dumps the IPv4 table and passes each entry to fn (see
// Kernel.ScanNeighbors). ctx is checked while waiting for the kernel.
func (s *neighScanner) scan(ctx context.Context, fn func(*Neighbor)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	ne := binary.NativeEndian
	ne.PutUint32(s.req[0:4], uint32(len(s.req)))
	ne.PutUint16(s.req[4:6], unix.RTM_GETNEIGH)
	ne.PutUint16(s.req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(s.req[8:12], s.seq)
	ne.PutUint32(s.req[12:16], 0)
	clear(s.req[unix.NLMSG_HDRLEN:])
	s.req[unix.NLMSG_HDRLEN] = unix.AF_INET // ndm_family
	fd := s.sock.GetFd()
	if _, err := unix.Write(fd, s.req[:]); err != nil {
		return fmt.Errorf("send dump request: %w", err)
	}
	intr := false
	for {
		n, err := s.read(ctx, fd)
		if err != nil {
			return err
		}
		for b := s.buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(ne.Uint32(b[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return errors.New("malformed netlink message")
			}
			typ, flags, seq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
			body := b[unix.NLMSG_HDRLEN:l]
			if next := nlmAlign(l); next < len(b) {
				b = b[next:]
			} else {
				b = nil
			}
			if seq != s.seq {
				continue // the rest of an earlier, abandoned dump
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch typ {
			case unix.NLMSG_DONE:
				if intr {
					return netlink.ErrDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(body) >= 4 {
					if errno := int32(ne.Uint32(body[0:4])); errno != 0 {
						return unix.Errno(-errno)
					}
				}
				return nil
			case unix.RTM_NEWNEIGH:
				var ok bool
				if s.n, ok = parseNeighMsg(body, nil); ok {
					fn(&s.n) // s.n, not a local: a pointer to a local escapes
				}
			}
		}
	}
}

// read reads one batch of messages, waiting for it while ctx lasts.
func (s *neighScanner) read(ctx context.Context, fd int) (int, error) {
	for {
		n, err := unix.Read(fd, s.buf)
		switch {
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, fmt.Errorf("read dump: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// The kernel answers a dump at once; the timeout only lets ctx
		// be checked.
		if _, err := unix.Poll(s.pfd, 100); err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("wait for dump: %w", err)
		}
	}
}

// nlmAlign rounds l up to netlink's 4-byte message alignment.
func nlmAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
