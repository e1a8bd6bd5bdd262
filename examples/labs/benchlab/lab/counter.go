package lab

import (
	"errors"
	"fmt"
	"net"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// Frames counts what a run sent into the peers' namespace: ARP requests,
// by destination.
type Frames struct {
	Broadcast, Unicast uint64
}

// frameCounter counts the ARP requests arriving on the peers' trunk, the
// way a switch port would: two AF_PACKET sockets bound to ETH_P_ALL on the
// trunk, each with a filter that accepts one kind of request. Sockets of
// ETH_P_ALL see a frame as it arrives, before the nft ingress rule and
// the macvlans. They are never read: the kernel counts every frame their
// filter accepts in PACKET_STATISTICS, also those it drops because the
// (tiny) receive buffer is full, so the counting costs the lab only a
// filter run per frame and nobody has to read anything.
type frameCounter struct {
	bcast, ucast *packet.Conn
}

func newFrameCounter(ns *netns.NS, ifname string) (*frameCounter, error) {
	fc := &frameCounter{}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if fc.bcast, err = listenCounting(ifi, true); err != nil {
			return err
		}
		fc.ucast, err = listenCounting(ifi, false)
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("lab: frame counters: %w", err), fc.Close())
	}
	if _, err := fc.take(); err != nil { // start from zero
		return nil, errors.Join(err, fc.Close())
	}
	return fc, nil
}

func listenCounting(ifi *net.Interface, broadcast bool) (*packet.Conn, error) {
	filter, err := requestFilter(broadcast)
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			// The kernel rounds this up to its minimum: a few frames.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1)
		})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// requestFilter accepts incoming ARP requests (opcode 1) sent to the
// broadcast address, or, when broadcast is false, to any other address.
func requestFilter(broadcast bool) ([]bpf.RawInstruction, error) {
	const packetOutgoing = 4 // PACKET_OUTGOING: a frame the trunk sends
	accept, reject := bpf.RetConstant{Val: 1 << 16}, bpf.RetConstant{Val: 0}
	onBcast, onOther := accept, reject
	if !broadcast {
		onBcast, onOther = reject, accept
	}
	return bpf.Assemble([]bpf.Instruction{
		/*  0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/*  1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 10}, // -> 12
		/*  2 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
		/*  3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0806, SkipTrue: 8}, // -> 12
		/*  4 */ bpf.LoadAbsolute{Off: 20, Size: 2}, // ARP opcode
		/*  5 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 1, SkipTrue: 6}, // -> 12
		/*  6 */ bpf.LoadAbsolute{Off: 0, Size: 4}, // destination MAC
		/*  7 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0xffffffff, SkipTrue: 3}, // -> 11
		/*  8 */ bpf.LoadAbsolute{Off: 4, Size: 2},
		/*  9 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0xffff, SkipTrue: 1}, // -> 11
		/* 10 */ onBcast,
		/* 11 */ onOther,
		/* 12 */ reject,
	})
}

// take returns the requests counted since the last call, and starts
// counting afresh (reading PACKET_STATISTICS resets it).
func (fc *frameCounter) take() (Frames, error) {
	b, err := fc.bcast.Stats()
	if err != nil {
		return Frames{}, fmt.Errorf("lab: read frame counter: %w", err)
	}
	u, err := fc.ucast.Stats()
	if err != nil {
		return Frames{}, fmt.Errorf("lab: read frame counter: %w", err)
	}
	// tp_packets counts every frame the filter accepted, dropped or not.
	return Frames{Broadcast: uint64(b.Packets), Unicast: uint64(u.Packets)}, nil
}

func (fc *frameCounter) Close() error {
	var errs []error
	for _, c := range []*packet.Conn{fc.bcast, fc.ucast} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Requests returns the ARP requests the peers' namespace received since
// the last call (or since Build), and starts counting afresh.
func (l *Lab) Requests() (Frames, error) { return l.count.take() }
