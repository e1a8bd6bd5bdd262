package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// The mismatch filter: where the process may load eBPF (CAP_BPF), the
// watcher's IPv4 sockets take, instead of the classic SYN filter, an eBPF
// socket filter that looks every IPv4 frame's source address up in a map
// of the watched entries' MACs (kept in step with the watcher's cache)
// and passes a frame to user space only when its source MAC differs from
// the cached one: the new owner of a recycled address is seen from its
// first frame of any kind (a UDP query, a ping, a TCP segment of a
// connection it had), not only from a SYN. Frames of hosts whose entries
// are right, and of addresses with no entry, are dropped in the kernel.
// Each entry passes at most one frame per Gap, so that a stream from
// the new owner costs one frame a second until the entry is repaired.

// mismatchGap is the least time, in nanoseconds, between two frames the
// filter passes for one entry.
const mismatchGap = uint64(Gap)

// skbIfindex is the offset of __sk_buff's ifindex
// (include/uapi/linux/bpf.h).
const skbIfindex = 40

// mismatchEntries bounds the map: room for the largest tables arpcheck is
// measured on. Entries are allocated as they are added (no prealloc).
const mismatchEntries = 1 << 17

// mismatchKey is the map's key: the interface and the IPv4 address as the
// filter reads them (the address as a number, in host order, as BPF_LD_ABS
// gives it).
type mismatchKey struct {
	Ifindex uint32
	IP      uint32
}

// mismatchValue is the map's value: the cached MAC as BPF_LD_ABS reads a
// frame's source MAC (its first four bytes and last two, as numbers in
// host order), and when the filter last passed a frame for the entry
// (bpf_ktime_get_ns; the filter writes it).
type mismatchValue struct {
	Hi   uint32
	Lo   uint16
	_    uint16
	Last uint64
}

func newMismatchKey(ifindex int, ip netip.Addr) mismatchKey {
	a := ip.As4()
	return mismatchKey{Ifindex: uint32(ifindex), IP: binary.BigEndian.Uint32(a[:])}
}

func newMismatchValue(mac [6]byte) mismatchValue {
	return mismatchValue{Hi: binary.BigEndian.Uint32(mac[0:4]), Lo: binary.BigEndian.Uint16(mac[4:6])}
}

// mismatchFilter is the loaded filter and its map, shared by the
// watcher's sockets on every interface.
type mismatchFilter struct {
	prog *ebpf.Program
	macs *ebpf.Map
	// kept mirrors what the map holds, so that only changes are written.
	kept map[neighKey][6]byte
}

// loadMismatchFilter loads the filter. It fails, with an error for
// which errors.Is(err, os.ErrPermission) is true, without CAP_BPF.
func loadMismatchFilter() (*mismatchFilter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: 16,
		MaxEntries: mismatchEntries, Flags: unix.BPF_F_NO_PREALLOC})
	if err != nil {
		return nil, fmt.Errorf("watch: mismatch filter map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "MIT",
		Instructions: mismatchProgram(m.FD()),
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("watch: load mismatch filter: %w", err)
	}
	return &mismatchFilter{prog: prog, macs: m, kept: make(map[neighKey][6]byte)}, nil
}

// mismatchProgram returns the filter's instructions, with the map whose
// file descriptor is macsFD.
func mismatchProgram(macsFD int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = skb, as LD_ABS wants it
		asm.LoadAbs(12, asm.Half),   // EtherType
		asm.JNE.Imm(asm.R0, 0x0800, "drop"),
		// The key: the interface, and the IPv4 source address.
		asm.LoadMem(asm.R0, asm.R6, skbIfindex, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.Word),
		asm.LoadAbs(14+12, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, macsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"), // no watched entry
		asm.Mov.Reg(asm.R7, asm.R0),    // r7 = the value, kept across LD_ABS
		// The source MAC against the cached one.
		asm.LoadAbs(6, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Word),
		asm.JNE.Reg32(asm.R0, asm.R1, "mismatch"),
		asm.LoadAbs(10, asm.Half),
		asm.LoadMem(asm.R1, asm.R7, 4, asm.Half),
		asm.JNE.Reg(asm.R0, asm.R1, "mismatch"),
		asm.Ja.Label("drop"),
		// Another MAC: pass it, unless one passed within mismatchGap.
		asm.FnKtimeGetNs.Call().WithSymbol("mismatch"),
		asm.LoadMem(asm.R1, asm.R7, 8, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.LoadImm(asm.R3, int64(mismatchGap), asm.DWord),
		asm.JLT.Reg(asm.R2, asm.R3, "drop"),
		asm.StoreMem(asm.R7, 8, asm.R0, asm.DWord),
		asm.Mov.Imm(asm.R0, synSnap),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"),
		asm.Return(),
	}
}

// attach makes f the socket fd's filter, in place of any other.
func (f *mismatchFilter) attach(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, f.prog.FD()); err != nil {
		return fmt.Errorf("watch: attach mismatch filter: %w", err)
	}
	return nil
}

// set makes the map hold mac for k, or nothing if mac is nil, writing
// only when that changes what it holds.
func (f *mismatchFilter) set(k neighKey, mac []byte) error {
	old, had := f.kept[k]
	key := newMismatchKey(k.ifindex, k.ip)
	if len(mac) != 6 {
		if !had {
			return nil
		}
		delete(f.kept, k)
		if err := f.macs.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("watch: mismatch filter: forget %s: %w", k.ip, err)
		}
		return nil
	}
	if had && old == [6]byte(mac) {
		return nil
	}
	v := newMismatchValue([6]byte(mac))
	if err := f.macs.Put(key, v); err != nil {
		return fmt.Errorf("watch: mismatch filter: %s: %w", k.ip, err)
	}
	f.kept[k] = [6]byte(mac)
	return nil
}

// Close releases the program and the map (sockets keep their own
// reference to the program while they live).
func (f *mismatchFilter) Close() error {
	return errors.Join(f.prog.Close(), f.macs.Close())
}

// loadMismatch loads the eBPF filter of the IPv4 sockets, once, and
// says which filter they use.
func (l *loop) loadMismatch() {
	if l.mismatchTried {
		return
	}
	l.mismatchTried = true
	f, err := loadMismatchFilter()
	if err != nil {
		l.w.log.Info("IPv4 sightings from TCP SYNs only (classic socket filter)", "ebpf", err)
		return
	}
	l.mismatch = f
	l.syncMismatch()
	l.w.log.Info("IPv4 sightings from every frame whose source MAC differs from the cached one (eBPF socket filter)")
}

// syncMismatch brings the filter's map in step with the cache, for the
// entries of keys, or every entry if keys is nil.
func (l *loop) syncMismatch(keys ...neighKey) {
	f := l.mismatch
	if f == nil {
		return
	}
	w := l.w
	w.mu.RLock()
	if keys == nil {
		for k := range f.kept {
			if _, ok := w.cache[k]; !ok {
				keys = append(keys, k)
			}
		}
		for k := range w.cache {
			keys = append(keys, k)
		}
	}
	var errs []error
	for _, k := range keys {
		var mac []byte
		if n, ok := w.cache[k]; ok && n.Usable() && n.State&arpprobe.StateNoARP == 0 {
			mac = n.MAC
		}
		if err := f.set(k, mac); err != nil {
			errs = append(errs, err)
		}
	}
	w.mu.RUnlock()
	if err := errors.Join(errs...); err != nil {
		w.log.Warn("cannot update the IPv4 filter's entries", "err", err)
	}
}
