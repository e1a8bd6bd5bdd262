package arpprobe

import (
	"net"
	"net/netip"
	"time"
)

// Reply is one MAC that answered for a peer's address during a check.
type Reply struct {
	MAC net.HardwareAddr
	// Unicast is true when a unicast request had been sent to this MAC
	// before it answered. ARP has no transaction id, so a reply cannot be
	// tied to one request; this says the MAC was asked directly.
	Unicast bool
	// RTT is the time from the latest request for the address sent
	// before this MAC's first reply, to that reply.
	RTT time.Duration
	// Count is how many replies this MAC sent (more than one: duplicates,
	// or answers to several attempts).
	Count int
}

// Peer is one checked address: what the kernel held before any frame was
// sent, who answered, the verdict, and what a repair did.
type Peer struct {
	IP        netip.Addr
	Interface string     // empty for an offlink peer
	Ifindex   int        // 0 for an offlink peer
	Source    netip.Addr // sender address used in requests
	// Via is the index of the interface the requests go out on and the
	// replies come in on when it is not Ifindex: the bridge or bond that
	// an entry's interface is a port of (Link.Master), which holds the
	// IPv4 address and receives what the port receives. 0: Ifindex.
	Via int
	// Cached is the entry as snapshotted before any frame was sent; nil
	// when the kernel had none for this address on this interface.
	Cached *Neighbor
	// Replies are the distinct MACs that answered, in order of first reply.
	Replies []Reply
	// Owner is the MAC that owns the address: set only when exactly one
	// MAC answered.
	Owner   net.HardwareAddr
	Verdict Verdict
	Action  Action
	// Reason explains an unknown or offlink verdict, or a refused action.
	Reason string
	// After is the entry as read at the end of the run; nil when none.
	After *Neighbor
}

// Summary counts peers by verdict.
type Summary struct {
	Checked  int
	OK       int
	Stale    int
	Dead     int
	Conflict int
	Uncached int
	Offlink  int
	Unknown  int
	// Repaired counts stale peers whose entry was replaced or found healed.
	Repaired int
	// Deleted counts dead peers whose entry was deleted.
	Deleted int
}

// Count returns the number of peers with verdict v.
func (s Summary) Count(v Verdict) int {
	switch v {
	case VerdictOK:
		return s.OK
	case VerdictStale:
		return s.Stale
	case VerdictDead:
		return s.Dead
	case VerdictConflict:
		return s.Conflict
	case VerdictUncached:
		return s.Uncached
	case VerdictOfflink:
		return s.Offlink
	case VerdictUnknown:
		return s.Unknown
	}
	return 0
}

func (s *Summary) add(p *Peer) {
	s.Checked++
	switch p.Verdict {
	case VerdictOK:
		s.OK++
	case VerdictStale:
		s.Stale++
	case VerdictDead:
		s.Dead++
	case VerdictConflict:
		s.Conflict++
	case VerdictUncached:
		s.Uncached++
	case VerdictOfflink:
		s.Offlink++
	case VerdictUnknown:
		s.Unknown++
	}
	switch {
	case p.Verdict == VerdictStale && (p.Action == ActionReplaced || p.Action == ActionHealed):
		s.Repaired++
	case p.Verdict == VerdictDead && p.Action == ActionDeleted:
		s.Deleted++
	}
}

// Stats counts the frames of a run.
type Stats struct {
	SentUnicast   uint64
	SentBroadcast uint64
	Received      uint64 // frames that passed the kernel filter
	Replies       uint64 // replies matched to a peer under check
	// Dropped counts received frames not used, by reason.
	Dropped [numDropReasons]uint64
	// KernelDrops counts frames the kernel dropped because the socket's
	// receive ring was full.
	KernelDrops uint64
	// Rejected counts, by reason, the frames the kernel's socket filter
	// rejected before they were queued (malformed, tagged, for another
	// host, from a sender MAC no host can have), when it could count
	// them: RejectsCounted says so. Counting needs the eBPF filter, which
	// needs CAP_BPF; the classic filter, used without it, rejects the
	// same frames uncounted.
	Rejected       [numDropReasons]uint64
	RejectsCounted bool
}

// DroppedTotal returns the number of frames dropped for any reason,
// kernel drops included.
func (s *Stats) DroppedTotal() uint64 {
	n := s.KernelDrops
	for _, d := range s.Dropped[1:] {
		n += d
	}
	return n
}

// Report is the result of one check or repair run.
type Report struct {
	Peers    []Peer // in the order the peers were given
	Summary  Summary
	Stats    Stats
	Started  time.Time
	Duration time.Duration
}
