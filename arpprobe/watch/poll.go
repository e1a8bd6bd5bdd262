package watch

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Polling the table. A read every Poll is how a Watcher without the
// tracer sees entries enter DELAY; on a table of thousands of entries it
// is most of what watching costs when all is well. So when the Table is
// a NeighborScanner, a poll keeps nothing of the entries that did not
// change since the last read: it compares each, as the dump decodes it,
// with what the last read showed (seen), and hands only the changed,
// new and vanished ones to the same path as kernel events.

// NeighborScanner is a NeighborTable that can also pass its IPv4 entries
// to a function one at a time, without keeping them. A Watcher polls
// through it when its Table is one (arpprobe.Kernel is), so that reading a table
// where nothing changed allocates next to nothing. The Neighbor passed,
// its MAC included, is valid only during the call; its Interface may be
// empty. An error may come after some entries were passed.
type NeighborScanner interface {
	ScanNeighbors(ctx context.Context, fn func(*arpprobe.Neighbor)) error
}

// seenKey is an entry's interface index and IPv4 address in one word:
// a map keyed by it hashes far faster than one keyed by neighKey.
type seenKey uint64

func seenKeyOf(ifindex int, ip netip.Addr) seenKey {
	a := ip.As4()
	return seenKey(uint64(uint32(ifindex))<<32 | uint64(binary.BigEndian.Uint32(a[:])))
}

// neighKey returns the entry's interface and address.
func (k seenKey) neighKey() neighKey {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(k))
	return neighKey{int(int32(k >> 32)), netip.AddrFrom4(a)}
}

// seenEntry is what the last read showed of one entry.
type seenEntry struct {
	state arpprobe.State
	flags arpprobe.Flag
	mac   [6]byte
	nmac  uint8  // length of the MAC; another length than 6 is not kept
	gen   uint32 // the read that last showed the entry
}

// seenOf returns what n shows, as of read gen.
func seenOf(n *arpprobe.Neighbor, gen uint32) seenEntry {
	e := seenEntry{state: n.State, flags: n.Flags, nmac: uint8(min(len(n.MAC), 255)), gen: gen}
	if len(n.MAC) == 6 {
		e.mac = [6]byte(n.MAC)
	}
	return e
}

// same reports whether e and o show the entry alike, whichever reads
// they come from.
func (e seenEntry) same(o seenEntry) bool {
	e.gen = o.gen
	return e == o
}

// remember records every IPv4 entry of a whole read of the table, for
// the polls that follow, if the table can be scanned.
func (l *loop) remember(entries []arpprobe.Neighbor) {
	if _, ok := l.w.cfg.Table.(NeighborScanner); !ok {
		return
	}
	l.seenGen++
	l.seen = make(map[seenKey]seenEntry, len(entries))
	for i := range entries {
		n := &entries[i]
		if ip := n.IP.Unmap(); ip.Is4() {
			l.seen[seenKeyOf(n.Ifindex, ip)] = seenOf(n, l.seenGen)
		}
	}
}

// poll reads the table. Through a NeighborScanner, after a whole read,
// it handles only what changed since (see above); otherwise, and after a
// failed scan, it reads the whole table (refresh).
func (l *loop) poll(ctx context.Context) {
	sc, ok := l.w.cfg.Table.(NeighborScanner)
	if !ok || l.seen == nil {
		l.refresh(ctx, false)
		return
	}
	l.seenGen++
	gen := l.seenGen
	l.changed = l.changed[:0]
	if l.scanOne == nil {
		l.scanOne = l.scanned // bound once: a closure per poll would be allocated
	}
	err := sc.ScanNeighbors(ctx, l.scanOne)
	if err != nil {
		// Entries may have been missed: the next poll reads the whole
		// table, and says why if it cannot.
		l.seen = nil
		return
	}
	var gone []neighKey
	for k, e := range l.seen {
		if e.gen != gen {
			gone = append(gone, k.neighKey())
			delete(l.seen, k)
		}
	}
	for _, n := range l.changed {
		l.apply(ctx, NeighborEvent{Neighbor: n})
	}
	for _, k := range gone {
		l.apply(ctx, NeighborEvent{Neighbor: arpprobe.Neighbor{IP: k.ip, Ifindex: k.ifindex}, Deleted: true})
	}
	clear(l.changed) // let the MACs go
}

// scanned takes one entry of a poll's scan: it records what the entry
// shows and, if that changed since the last read, keeps a copy in
// l.changed.
func (l *loop) scanned(n *arpprobe.Neighbor) {
	ip := n.IP.Unmap()
	if !ip.Is4() {
		return
	}
	k := seenKeyOf(n.Ifindex, ip)
	cur := seenOf(n, l.seenGen)
	old, ok := l.seen[k]
	l.seen[k] = cur
	if ok && old.same(cur) {
		return
	}
	c := *n
	c.IP, c.MAC = ip, slices.Clone(n.MAC)
	l.changed = append(l.changed, c)
}
