package arpprobe

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The counting filter: the socket filter of bpf.go, as an eBPF program
// that also counts, by reason, the frames it rejects, in a per-CPU array
// indexed by DropReason. Loading it needs CAP_BPF (or CAP_SYS_ADMIN);
// without, Listen keeps the classic filter, which the kernel cannot make
// count. Frames are rejected for the same reasons and accepted alike
// (TestCountingFilterAgrees runs both on the same frames in the kernel).
//
// Reasons: DropOtherHost for the delivery part (a frame for an upper
// device or another host, such as a foreign VLAN's), DropShort, DropNotARP, DropFormat,
// DropOpcode and DropSender. ARP requests on a socket that takes only
// replies are rejected without being counted: they are the LAN's
// ordinary traffic, not bogus frames.

// __sk_buff offsets (include/uapi/linux/bpf.h): what a socket filter may
// read of the frame's metadata.
const (
	skbLen     = 0
	skbPktType = 4
	skbIfindex = 40
)

// countingFilter is a loaded counting filter.
type countingFilter struct {
	prog   *ebpf.Program
	counts *ebpf.Map
}

// countingProgram returns the counting filter's instructions for a
// socket bound to ifindex, counting into the map with file descriptor
// mapFD.
func countingProgram(ifindex uint32, requests bool, mapFD int) asm.Instructions {
	reject := func(label string, r DropReason) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.R10, -4, int64(r), asm.Word).WithSymbol(label),
			asm.Ja.Label("count"),
		}
	}
	p := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = skb, as LD_ABS wants it
		// Delivery part: the bound interface itself, not for another host.
		asm.LoadMem(asm.R0, asm.R6, skbIfindex, asm.Word),
		asm.JNE.Imm(asm.R0, int32(ifindex), "rej_vlan"),
		asm.LoadMem(asm.R0, asm.R6, skbPktType, asm.Word),
		asm.JGE.Imm(asm.R0, pktTypeOtherHost, "rej_vlan"),
		// Frame part, as frameFilter.
		asm.LoadMem(asm.R0, asm.R6, skbLen, asm.Word),
		asm.JLT.Imm(asm.R0, minFrameLen, "rej_short"),
		asm.LoadAbs(12, asm.Half), // r0 = EtherType
		asm.JNE.Imm(asm.R0, etherTypeARP, "rej_notarp"),
		asm.LoadAbs(14, asm.Word), // htype, ptype
		asm.JNE.Imm(asm.R0, 0x0001_0800, "rej_format"),
		asm.LoadAbs(18, asm.Word), // hlen, plen, opcode
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.RSh.Imm(asm.R7, 16),
		asm.JNE.Imm(asm.R7, 0x0604, "rej_format"),
		asm.And.Imm(asm.R0, 0xffff),
		asm.JEq.Imm(asm.R0, opReply, "sender"),
	}
	if requests {
		p = append(p, asm.JEq.Imm(asm.R0, opRequest, "sender"))
	} else {
		p = append(p, asm.JEq.Imm(asm.R0, opRequest, "drop"))
	}
	p = append(p,
		asm.Ja.Label("rej_opcode"),
		// The sender MAC: not group, not zero.
		asm.LoadAbs(offSenderMAC, asm.Byte).WithSymbol("sender"),
		asm.JSet.Imm(asm.R0, 1, "rej_sender"),
		asm.LoadAbs(offSenderMAC, asm.Word),
		asm.JNE.Imm(asm.R0, 0, "accept"),
		asm.LoadAbs(offSenderMAC+4, asm.Half),
		asm.JNE.Imm(asm.R0, 0, "accept"),
		asm.Ja.Label("rej_sender"),
		asm.Mov.Imm(asm.R0, filterSnapLen).WithSymbol("accept"),
		asm.Return(),
	)
	p = append(p, reject("rej_vlan", DropOtherHost)...)
	p = append(p, reject("rej_short", DropShort)...)
	p = append(p, reject("rej_notarp", DropNotARP)...)
	p = append(p, reject("rej_format", DropFormat)...)
	p = append(p, reject("rej_opcode", DropOpcode)...)
	p = append(p, reject("rej_sender", DropSender)...)
	return append(p,
		// counts[*(u32 *)(fp-4)]++ in this CPU's slot.
		asm.LoadMapPtr(asm.R1, mapFD).WithSymbol("count"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"),
		asm.Return(),
	)
}

// loadCountingFilter loads the counting filter for a socket bound to
// ifindex. It fails, with an error for which errors.Is(err,
// os.ErrPermission) is true, without CAP_BPF.
func loadCountingFilter(ifindex int, requests bool) (*countingFilter, error) {
	if ifindex <= 0 || ifindex > 1<<31-1 {
		return nil, fmt.Errorf("arpprobe: build counting filter: invalid interface index %d", ifindex)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(numDropReasons)})
	if err != nil {
		return nil, fmt.Errorf("arpprobe: counting filter map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "MIT",
		Instructions: countingProgram(uint32(ifindex), requests, m.FD()),
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("arpprobe: load counting filter: %w", err)
	}
	return &countingFilter{prog: prog, counts: m}, nil
}

// attach makes f the socket fd's filter, in place of the classic one.
func (f *countingFilter) attach(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, f.prog.FD()); err != nil {
		return fmt.Errorf("arpprobe: attach counting filter: %w", err)
	}
	return nil
}

// rejects returns the frames rejected so far, by reason, summed over
// the CPUs. It does not reset them.
func (f *countingFilter) rejects() (out [numDropReasons]uint64, err error) {
	var perCPU []uint64
	for r := range out {
		if err := f.counts.Lookup(uint32(r), &perCPU); err != nil {
			return out, fmt.Errorf("arpprobe: read counting filter: %w", err)
		}
		for _, n := range perCPU {
			out[r] += n
		}
	}
	return out, nil
}

// Close releases the program and its map (the socket keeps its own
// reference to the program while it lives).
func (f *countingFilter) Close() error {
	return errors.Join(f.prog.Close(), f.counts.Close())
}
