package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// defaultEventBuffer is the receive buffer size, in bytes, that a
// NeighborMonitor asks for: room for tens of thousands of events, so
// that a burst (a link going down flushes every entry on it) is not
// lost while the reader is busy.
const defaultEventBuffer = 4 << 20

// NeighborMonitor reports changes of the kernel's IPv4 neighbour table
// as they happen, through an rtnetlink subscription (RTNLGRP_NEIGH) in
// the network namespace it was opened in. It implements
// NeighborEventSource. Subscribing needs no privilege.
//
// The kernel drops events when the subscriber's receive buffer is full
// (ENOBUFS). A NeighborMonitor asks for a large buffer (it gets it as
// asked with CAP_NET_ADMIN, and capped at net.core.rmem_max without);
// when events are lost anyway, the subscription ends with an event whose
// Err wraps ErrEventsLost, and the subscriber reads the table again.
type NeighborMonitor struct {
	ns vnetns.NsHandle
	// ReceiveBuffer is the receive buffer size in bytes to ask for; zero
	// means 4 MiB, room for tens of thousands of events.
	ReceiveBuffer int
}

var _ NeighborEventSource = (*NeighborMonitor)(nil)

// OpenNeighborMonitor returns a NeighborMonitor for the calling thread's
// network namespace (the process's own, unless the calling goroutine is
// locked to a thread that entered another). It holds a reference to the
// namespace until Close.
func OpenNeighborMonitor() (*NeighborMonitor, error) {
	ns, err := threadNetns()
	if err != nil {
		return nil, err
	}
	return &NeighborMonitor{ns: ns}, nil
}

// Close lets go of the namespace. Subscriptions already made are not
// affected.
func (m *NeighborMonitor) Close() error {
	if err := m.ns.Close(); err != nil {
		return fmt.Errorf("watch: close namespace: %w", err)
	}
	return nil
}

// SubscribeNeighbors subscribes to the kernel's neighbour events (see
// NeighborEventSource). The socket is created in the monitor's
// namespace, whatever thread calls.
func (m *NeighborMonitor) SubscribeNeighbors(ctx context.Context) (<-chan NeighborEvent, error) {
	size := m.ReceiveBuffer
	if size == 0 {
		size = defaultEventBuffer
	}
	var (
		mu      sync.Mutex
		lastErr error
	)
	raw := make(chan netlink.NeighUpdate, 256)
	done := make(chan struct{})
	var closeDone sync.Once
	stop := func() { closeDone.Do(func() { close(done) }) }
	opts := netlink.NeighSubscribeOptions{
		ErrorCallback: func(err error) {
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				return // only dumps are interrupted; we make none here
			}
			mu.Lock()
			lastErr = err
			mu.Unlock()
		},
		ReceiveBufferSize:      size,
		ReceiveBufferForceSize: hasCapability(unix.CAP_NET_ADMIN),
	}
	// The socket is made on this thread. netlink switches a thread into
	// opts.Namespace even when it is there already, and entering a
	// namespace needs CAP_SYS_ADMIN: name the namespace only when this
	// thread is elsewhere, so that a daemon with only CAP_NET_RAW and
	// CAP_NET_ADMIN can subscribe in its own.
	runtime.LockOSThread()
	if cur, err := vnetns.Get(); err != nil || !cur.Equal(m.ns) {
		opts.Namespace = &m.ns
		if err == nil {
			cur.Close()
		}
	} else {
		cur.Close()
	}
	err := netlink.NeighSubscribeWithOptions(raw, done, opts)
	runtime.UnlockOSThread()
	if err != nil {
		stop()
		return nil, fmt.Errorf("watch: subscribe to neighbour events: %w", err)
	}
	out := make(chan NeighborEvent, 256)
	go func() {
		defer close(out)
		unhook := context.AfterFunc(ctx, stop) // closing done closes the socket
		defer unhook()
		for u := range raw {
			ev, ok := eventFromUpdate(u)
			if !ok {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
		// The netlink reader has returned; let go of the socket.
		stop()
		if ctx.Err() != nil {
			return
		}
		mu.Lock()
		err := lastErr
		mu.Unlock()
		switch {
		case errors.Is(err, syscall.ENOBUFS):
			err = fmt.Errorf("watch: neighbour events: %w: %w", ErrEventsLost, err)
		case err == nil:
			err = errors.New("watch: neighbour events: subscription closed")
		default:
			err = fmt.Errorf("watch: neighbour events: %w", err)
		}
		select {
		case out <- NeighborEvent{Err: err}:
		case <-ctx.Done():
		}
	}()
	return out, nil
}

// eventFromUpdate converts an IPv4 neighbour update; others (IPv6,
// bridge forwarding entries) are skipped.
func eventFromUpdate(u netlink.NeighUpdate) (NeighborEvent, bool) {
	if u.Family != netlink.FAMILY_V4 {
		return NeighborEvent{}, false
	}
	ip, ok := netip.AddrFromSlice(u.IP)
	if ip = ip.Unmap(); !ok || !ip.Is4() {
		return NeighborEvent{}, false
	}
	var mac net.HardwareAddr
	if len(u.HardwareAddr) > 0 {
		mac = u.HardwareAddr
	}
	return NeighborEvent{
		Neighbor: arpprobe.Neighbor{IP: ip, Ifindex: u.LinkIndex, MAC: mac, State: arpprobe.State(u.State), Flags: arpprobe.Flag(u.Flags)},
		Deleted:  u.Type == unix.RTM_DELNEIGH,
	}, true
}

// hasCapability reports whether the process holds capability c in its
// effective set.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}
