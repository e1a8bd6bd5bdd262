package watch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	ebpflink "github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// NeighborTracer reports IPv4 entries of one network namespace as they
// enter DELAY, through the kernel's neigh tracepoints: the moment a
// STALE entry is first used, and the moment a REACHABLE one runs out of
// reachable time while still in use. The kernel sends no netlink event
// for either, so without a tracer only a read of the table shows them
// (see DefaultPoll). It implements NeighborEventSource; its events
// carry the entry's interface index, address, MAC and state, and are
// meant for Config.Trace.
//
// Subscribing loads a small eBPF program and attaches it to the raw
// tracepoints neigh_event_send_done and neigh_timer_handler. That needs
// CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) and the kernel's BTF
// (/sys/kernel/btf/vmlinux), from which the program learns where the
// fields it reads lie in this kernel's structures. The program runs only
// on the kernel's slow path (an entry that is not REACHABLE being used,
// a neighbour timer firing) and passes to user space only entries of
// the tracer's namespace that just entered DELAY, so it costs nothing
// the traffic's rate would grow.
type NeighborTracer struct {
	ns   vnetns.NsHandle
	inum uint32
}

// traceLostCheck is how often a subscription's reader, when no record
// comes, looks whether records were lost.
const traceLostCheck = time.Second

var _ NeighborEventSource = (*NeighborTracer)(nil)

// traceTracepoints are where a NeighborTracer's program is attached.
var traceTracepoints = []string{"neigh_event_send_done", "neigh_timer_handler"}

// OpenNeighborTracer returns a NeighborTracer for the calling thread's
// network namespace (the process's own, unless the calling goroutine is
// locked to a thread that entered another). It holds a reference to the
// namespace until Close. It loads nothing: SubscribeNeighbors does, and
// says if the process may not.
func OpenNeighborTracer() (*NeighborTracer, error) {
	ns, err := threadNetns()
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		ns.Close()
		return nil, fmt.Errorf("watch: neighbour tracer: stat network namespace: %w", err)
	}
	return &NeighborTracer{ns: ns, inum: uint32(st.Ino)}, nil
}

// Close lets go of the namespace. Subscriptions already made are not
// affected.
func (t *NeighborTracer) Close() error {
	if err := t.ns.Close(); err != nil {
		return fmt.Errorf("watch: close namespace: %w", err)
	}
	return nil
}

// SubscribeNeighbors loads and attaches the tracer's program and reports
// every IPv4 entry of the namespace that enters DELAY, until ctx is
// done. If the kernel's ring buffer overflows, the subscription ends
// with an event whose Err wraps ErrEventsLost. It fails, with an error
// for which errors.Is(err, os.ErrPermission) is true, without CAP_BPF and
// CAP_PERFMON.
func (t *NeighborTracer) SubscribeNeighbors(ctx context.Context) (<-chan NeighborEvent, error) {
	p, err := loadNeighTrace(t.inum)
	if err != nil {
		return nil, err
	}
	rd, err := ringbuf.NewReader(p.events)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("watch: neighbour tracer: read ring buffer: %w", err)
	}
	out := make(chan NeighborEvent, 256)
	var once sync.Once
	stop := func() { once.Do(func() { rd.Close() }) }
	go func() {
		<-ctx.Done()
		stop()
	}()
	go func() {
		defer close(out)
		defer p.Close()
		defer stop()
		var rec ringbuf.Record
		for {
			rd.SetDeadline(time.Now().Add(traceLostCheck))
			err := rd.ReadInto(&rec)
			if err == nil {
				ev, ok := parseNeighTrace(rec.RawSample)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
				continue
			}
			if ctx.Err() != nil || errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				out <- NeighborEvent{Err: fmt.Errorf("watch: neighbour tracer: read: %w", err)}
				return
			}
			if n, err := p.lost(); err != nil || n > 0 {
				if err == nil {
					err = fmt.Errorf("watch: neighbour tracer: %d events did not fit the ring buffer: %w", n, ErrEventsLost)
				}
				out <- NeighborEvent{Err: err}
				return
			}
		}
	}()
	return out, nil
}

// neighTraceRecord is what the program writes for each entry: ifindex
// (native order), address, MAC, state and a pad byte.
const neighTraceRecord = 16

// parseNeighTrace decodes one record.
func parseNeighTrace(b []byte) (NeighborEvent, bool) {
	if len(b) < neighTraceRecord {
		return NeighborEvent{}, false
	}
	ifindex := int(binary.NativeEndian.Uint32(b[0:4]))
	ip := netip.AddrFrom4([4]byte(b[4:8]))
	mac := net.HardwareAddr(append([]byte(nil), b[8:14]...))
	return NeighborEvent{Neighbor: arpprobe.Neighbor{IP: ip, MAC: mac, Ifindex: ifindex, State: arpprobe.State(b[14])}}, true
}

// neighTrace is a loaded and attached tracer program.
type neighTrace struct {
	prog         *ebpf.Program
	events, lose *ebpf.Map
	links        []ebpflink.Link
}

// Close detaches the program and releases it and its maps; it closes
// what a failed load made.
func (p *neighTrace) Close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	for _, m := range []*ebpf.Map{p.events, p.lose} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// lost returns how many records did not fit the ring buffer.
func (p *neighTrace) lost() (uint64, error) {
	var n uint64
	if err := p.lose.Lookup(uint32(0), &n); err != nil {
		return 0, fmt.Errorf("watch: neighbour tracer: read lost count: %w", err)
	}
	return n, nil
}

// loadNeighTrace loads the tracer program for the namespace with inode
// number inum and attaches it.
func loadNeighTrace(inum uint32) (_ *neighTrace, err error) {
	off, err := kernelNeighOffsets()
	if err != nil {
		return nil, err
	}
	p := &neighTrace{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.events, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 256 << 10})
	if err != nil {
		return nil, traceLoadError("make ring buffer", err)
	}
	p.lose, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, traceLoadError("make lost counter", err)
	}
	p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.RawTracepoint,
		License:      "Dual MIT/GPL", // bpf_probe_read_kernel is GPL-only
		Instructions: neighTraceProgram(off, inum, p.events.FD(), p.lose.FD()),
	})
	if err != nil {
		return nil, traceLoadError("load program", err)
	}
	for _, tp := range traceTracepoints {
		l, err := ebpflink.AttachRawTracepoint(ebpflink.RawTracepointOptions{Name: tp, Program: p.prog})
		if err != nil {
			return nil, traceLoadError("attach to "+tp, err)
		}
		p.links = append(p.links, l)
	}
	return p, nil
}

// traceLoadError wraps a failure to set the tracer up, naming the
// capabilities when the kernel refused.
func traceLoadError(what string, err error) error {
	err = fmt.Errorf("watch: neighbour tracer: %s: %w", what, err)
	if errors.Is(err, os.ErrPermission) {
		return &arpprobe.CapabilityError{Capability: "CAP_BPF and CAP_PERFMON",
			Err: fmt.Errorf("%w (needs CAP_BPF and CAP_PERFMON)", err)}
	}
	return err
}

// neighOffsets are the byte offsets the program reads, in this kernel's
// structures.
type neighOffsets struct {
	nudState, tbl, dev, primaryKey, ha uint32 // struct neighbour
	tblFamily                          uint32 // struct neigh_table
	devIfindex, devNet                 uint32 // struct net_device (nd_net.net)
	netInum                            uint32 // struct net (ns.inum)
}

// kernelNeighOffsets reads the offsets from the running kernel's BTF.
func kernelNeighOffsets() (neighOffsets, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return neighOffsets{}, fmt.Errorf("watch: neighbour tracer: read kernel BTF: %w", err)
	}
	return neighOffsetsFrom(spec)
}

// neighOffsetsFrom reads the offsets from spec.
func neighOffsetsFrom(spec *btf.Spec) (o neighOffsets, err error) {
	for _, f := range []struct {
		dst  *uint32
		typ  string
		path []string
	}{
		{&o.nudState, "neighbour", []string{"nud_state"}},
		{&o.tbl, "neighbour", []string{"tbl"}},
		{&o.dev, "neighbour", []string{"dev"}},
		{&o.primaryKey, "neighbour", []string{"primary_key"}},
		{&o.ha, "neighbour", []string{"ha"}},
		{&o.tblFamily, "neigh_table", []string{"family"}},
		{&o.devIfindex, "net_device", []string{"ifindex"}},
		{&o.devNet, "net_device", []string{"nd_net", "net"}},
		{&o.netInum, "net", []string{"ns", "inum"}},
	} {
		if *f.dst, err = btfOffset(spec, f.typ, f.path); err != nil {
			return o, fmt.Errorf("watch: neighbour tracer: kernel BTF: %w", err)
		}
	}
	return o, nil
}

// btfOffset returns the byte offset of the field at path in struct typ,
// looking through typedefs, qualifiers and anonymous members.
func btfOffset(spec *btf.Spec, typ string, path []string) (uint32, error) {
	var st *btf.Struct
	if err := spec.TypeByName(typ, &st); err != nil {
		return 0, fmt.Errorf("struct %s: %w", typ, err)
	}
	var t btf.Type = st
	var off uint32
	for _, name := range path {
		m, at, ok := btfMember(t, name)
		if !ok {
			return 0, fmt.Errorf("struct %s: no field %s", typ, name)
		}
		off += at
		t = m
	}
	return off, nil
}

// btfMember finds the member name of the struct or union t, also inside
// its anonymous members, and returns its type and byte offset.
func btfMember(t btf.Type, name string) (btf.Type, uint32, bool) {
	var members []btf.Member
	switch v := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = v.Members
	case *btf.Union:
		members = v.Members
	default:
		return nil, 0, false
	}
	for _, m := range members {
		if m.Name == name {
			return m.Type, m.Offset.Bytes(), true
		}
		if m.Name == "" {
			if mt, at, ok := btfMember(m.Type, name); ok {
				return mt, m.Offset.Bytes() + at, true
			}
		}
	}
	return nil, 0, false
}

// Kernel constants the program compares with.
const (
	nudDelay = 0x08 // NUD_DELAY
	afInet   = 2    // AF_INET
)

// neighTraceProgram returns the tracer's instructions: for the entry a
// neigh tracepoint fires on (the raw tracepoint's first argument), if
// it is in DELAY, in the IPv4 table, on a device of the namespace with
// inode number inum, write a record to the ring buffer eventsFD; count
// the records that do not fit in loseFD.
//
// Stack: the record at fp-16 (ifindex, address, MAC, state, pad), a
// scratch word at fp-24, the counter's key at fp-28.
func neighTraceProgram(o neighOffsets, inum uint32, eventsFD, loseFD int) asm.Instructions {
	// read copies size bytes at src+off into the stack at dst, and jumps
	// out if the kernel refused.
	read := func(dst int16, size int32, src asm.Register, off uint32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, int32(dst)),
			asm.Mov.Imm(asm.R2, size),
			asm.Mov.Reg(asm.R3, src),
			asm.Add.Imm(asm.R3, int32(off)),
			asm.FnProbeReadKernel.Call(),
			asm.JNE.Imm(asm.R0, 0, "out"),
		}
	}
	var p asm.Instructions
	add := func(is ...asm.Instruction) { p = append(p, is...) }
	add(
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord), // r6 = args[0], the struct neighbour *
		asm.Mov.Imm(asm.R0, 0),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
	)
	// The state, at once: most firings are of other states.
	add(read(-2, 1, asm.R6, o.nudState)...)
	add(
		asm.LoadMem(asm.R0, asm.RFP, -2, asm.Byte),
		asm.JNE.Imm(asm.R0, nudDelay, "out"),
	)
	// The table's family: IPv4's (arp_tbl).
	add(read(-24, 8, asm.R6, o.tbl)...)
	add(
		asm.LoadMem(asm.R7, asm.RFP, -24, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "out"),
	)
	add(read(-24, 4, asm.R7, o.tblFamily)...)
	add(
		asm.LoadMem(asm.R0, asm.RFP, -24, asm.Word),
		asm.JNE.Imm32(asm.R0, afInet, "out"),
	)
	// The device's namespace.
	add(read(-24, 8, asm.R6, o.dev)...)
	add(
		asm.LoadMem(asm.R7, asm.RFP, -24, asm.DWord), // r7 = the net_device
		asm.JEq.Imm(asm.R7, 0, "out"),
	)
	add(read(-24, 8, asm.R7, o.devNet)...)
	add(
		asm.LoadMem(asm.R8, asm.RFP, -24, asm.DWord), // r8 = the struct net
		asm.JEq.Imm(asm.R8, 0, "out"),
	)
	add(read(-24, 4, asm.R8, o.netInum)...)
	add(
		asm.LoadMem(asm.R0, asm.RFP, -24, asm.Word),
		// A 32-bit comparison: inode numbers pass 2^31.
		asm.JNE.Imm32(asm.R0, int32(inum), "out"),
	)
	// The record.
	add(read(-16, 4, asm.R7, o.devIfindex)...)
	add(read(-12, 4, asm.R6, o.primaryKey)...)
	add(read(-8, 6, asm.R6, o.ha)...)
	add(
		asm.LoadMapPtr(asm.R1, eventsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.Mov.Imm(asm.R3, neighTraceRecord),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		// It did not fit: count it.
		asm.StoreImm(asm.RFP, -28, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, loseFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -28),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
	return p
}
