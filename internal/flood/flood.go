// Package flood sends prepared Ethernet frames from an interface, at a
// given rate or as fast as the kernel takes them: the ARP storms of the
// hostile-LAN tests and of the storm lab. It is for tests and labs in
// network namespaces they made; it needs CAP_NET_RAW there.
package flood

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batch is how many frames one sendmmsg(2) call sends.
const batch = 64

// Flooder sends frames until Stop.
type Flooder struct {
	fd    int
	sent  atomic.Uint64
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	err   error
}

// Start opens a raw packet socket on the interface named ifname, in the
// network namespace of the function that do runs it in (such as
// netns.NS.Do), and sends frames from it round robin, rate frames a
// second (in batches of 64, paced from the start), or as fast as it can
// when rate is 0. The socket receives nothing. It returns once the first
// batch is out.
func Start(do func(func() error) error, ifname string, frames [][]byte, rate int) (*Flooder, error) {
	if len(frames) == 0 {
		return nil, errors.New("flood: no frames")
	}
	f := &Flooder{fd: -1, stop: make(chan struct{}), done: make(chan struct{})}
	err := do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0: a socket that sends and receives nothing.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		f.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flood: open %s: %w", ifname, err)
	}
	first := make(chan struct{})
	f.start = time.Now()
	go f.run(frames, rate, first)
	select {
	case <-first:
	case <-f.done:
	}
	if f.err != nil {
		return nil, fmt.Errorf("flood: send on %s: %w", ifname, f.err)
	}
	return f, nil
}

func (f *Flooder) run(frames [][]byte, rate int, first chan struct{}) {
	defer close(f.done)
	var msgs [batch]unix.Mmsghdr
	var iovs [batch]unix.Iovec
	for i := range msgs {
		msgs[i].Hdr.Iov = &iovs[i]
		msgs[i].Hdr.Iovlen = 1
	}
	next := 0
	for n := 0; ; n++ {
		select {
		case <-f.stop:
			return
		default:
		}
		if rate > 0 {
			due := f.start.Add(time.Duration(f.sent.Load()) * time.Second / time.Duration(rate))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-f.stop:
					return
				case <-time.After(wait):
				}
			}
		}
		for i := range iovs {
			fr := frames[next]
			next = (next + 1) % len(frames)
			iovs[i].Base = &fr[0]
			iovs[i].SetLen(len(fr))
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(f.fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
		switch errno {
		case 0:
			f.sent.Add(uint64(r))
		case unix.EINTR, unix.ENOBUFS, unix.EAGAIN:
		default:
			f.err = errno
			return
		}
		if n == 0 {
			close(first)
		}
	}
}

// Sent returns how many frames have been sent so far.
func (f *Flooder) Sent() uint64 { return f.sent.Load() }

// Stop stops the flood, closes the socket, and returns the frames sent,
// their rate over the whole flood and the error that stopped it early, if
// any. Calling it again returns the same.
func (f *Flooder) Stop() (sent uint64, perSecond float64, err error) {
	select {
	case <-f.stop:
	default:
		close(f.stop)
		<-f.done
		unix.Close(f.fd)
	}
	n := f.sent.Load()
	return n, float64(n) / time.Since(f.start).Seconds(), f.err
}
