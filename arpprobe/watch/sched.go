package watch

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Cause says what asked a Watcher to check an address.
type Cause string

// The causes. Their names appear in logs and metrics.
const (
	// CauseState: the entry entered DELAY (used while STALE) or PROBE.
	CauseState Cause = "state"
	// CauseMAC: the entry changed MAC.
	CauseMAC Cause = "mac"
	// CauseNew: an entry with a MAC appeared (or an entry without one
	// got one).
	CauseNew Cause = "new"
	// CauseWire: an ARP request or gratuitous announcement on the wire
	// showed the address with a MAC other than the cached one.
	CauseWire Cause = "wire"
	// CauseIPv4: a TCP SYN from an address of the interface's subnet
	// with another source MAC than the cached one: the new owner of a
	// recycled address connecting, though it sent no ARP we could see.
	CauseIPv4 Cause = "ipv4"
	// CauseSweep: the periodic sweep of every watched address.
	CauseSweep Cause = "sweep"
)

// Causes lists every cause in a stable order, for reports and metrics.
var Causes = [...]Cause{CauseState, CauseMAC, CauseNew, CauseWire, CauseIPv4, CauseSweep}

// Trigger is one request to check an address.
type Trigger struct {
	IP netip.Addr
	// MAC is the MAC in question: the cached one for CauseState and
	// CauseSweep, the new one for CauseMAC and CauseNew, the announced one
	// for CauseWire. Nil when the address has no entry.
	MAC   net.HardwareAddr
	Cause Cause
	At    time.Time // when it was raised
}

// scheduler decides when addresses are checked. It is pure (the caller
// passes the time) and not safe for concurrent use.
//
// Rules:
//   - an address is checked at most once per gap (RFC 1122 2.3.2.1 asks
//     for at most about one request per second per destination), and never
//     twice at once;
//   - a trigger waits coalesce after it was raised, so that the triggers of
//     an event storm raised within that window go out as one batch;
//   - triggers for the same address, MAC and cause merge (the earliest
//     stays), and so do triggers for the same address and cause beyond
//     perCause different MACs: they merge into the earliest of that
//     cause, so an address holds at most perCause triggers per cause
//     whatever floods in;
//   - when a check ends, the triggers raised meanwhile that it settled
//     (see done) are dropped.
type scheduler struct {
	gap, coalesce time.Duration
	perCause      int
	slots         map[netip.Addr]*slot
	waiting       map[netip.Addr]*slot // slots with pending triggers
	npending      int                  // triggers pending in all slots
	nsweep        int                  // of them, those of the sweep
}

type slot struct {
	last     time.Time // when its latest check started; zero: never
	inflight bool
	pending  []Trigger
}

func newScheduler(gap, coalesce time.Duration, perCause int) *scheduler {
	return &scheduler{gap: gap, coalesce: coalesce, perCause: perCause,
		slots: make(map[netip.Addr]*slot), waiting: make(map[netip.Addr]*slot)}
}

// add queues a trigger.
func (s *scheduler) add(t Trigger) {
	sl := s.slots[t.IP]
	if sl == nil {
		sl = &slot{}
		s.slots[t.IP] = sl
	}
	same := 0
	var earliest *Trigger
	for i := range sl.pending {
		p := &sl.pending[i]
		if p.Cause != t.Cause {
			continue
		}
		if bytes.Equal(p.MAC, t.MAC) {
			p.At = minTime(p.At, t.At)
			return
		}
		same++
		if earliest == nil || p.At.Before(earliest.At) {
			earliest = p
		}
	}
	if same >= s.perCause {
		earliest.At = minTime(earliest.At, t.At)
		return
	}
	sl.pending = append(sl.pending, t)
	s.npending++
	if t.Cause == CauseSweep {
		s.nsweep++
	}
	s.waiting[t.IP] = sl
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// due returns when a waiting slot may be checked.
func (s *scheduler) due(sl *slot) time.Time {
	first := sl.pending[0].At
	for _, t := range sl.pending[1:] {
		if t.At.Before(first) {
			first = t.At
		}
	}
	d := first.Add(s.coalesce)
	if !sl.last.IsZero() {
		if g := sl.last.Add(s.gap); g.After(d) {
			d = g
		}
	}
	return d
}

// next returns when take will next return something; zero when nothing
// waits but addresses being checked.
func (s *scheduler) next() time.Time {
	var n time.Time
	for _, sl := range s.waiting {
		if sl.inflight {
			continue
		}
		if d := s.due(sl); n.IsZero() || d.Before(n) {
			n = d
		}
	}
	return n
}

// take returns the pending triggers, ordered by address, of every
// address that may be checked at now (not being checked, not checked
// within a gap) if at least one of them is due, and marks those
// addresses as being checked from now. So the first trigger of a storm
// opens a window of coalesce, and everything raised within it goes out
// together.
func (s *scheduler) take(now time.Time) []Trigger {
	any := false
	for _, sl := range s.waiting {
		if !sl.inflight && !s.due(sl).After(now) {
			any = true
			break
		}
	}
	if !any {
		return nil
	}
	var out []Trigger
	for ip, sl := range s.waiting {
		if sl.inflight || !sl.last.IsZero() && now.Before(sl.last.Add(s.gap)) {
			continue
		}
		out = append(out, sl.pending...)
		s.npending -= len(sl.pending)
		s.nsweep -= countSweep(sl.pending)
		sl.pending = nil
		sl.inflight = true
		sl.last = now
		delete(s.waiting, ip)
	}
	slices.SortStableFunc(out, func(a, b Trigger) int { return a.IP.Compare(b.IP) })
	return out
}

// done ends the check of ip. Triggers raised while it ran for which
// settled returns true are dropped: the check already answered them.
func (s *scheduler) done(ip netip.Addr, settled func(Trigger) bool) {
	sl := s.slots[ip]
	if sl == nil {
		return
	}
	sl.inflight = false
	n, sweep := len(sl.pending), countSweep(sl.pending)
	sl.pending = slices.DeleteFunc(sl.pending, settled)
	s.npending -= n - len(sl.pending)
	s.nsweep -= sweep - countSweep(sl.pending)
	if len(sl.pending) == 0 {
		delete(s.waiting, ip)
	}
}

// countSweep returns how many of ts are the sweep's.
func countSweep(ts []Trigger) int {
	n := 0
	for _, t := range ts {
		if t.Cause == CauseSweep {
			n++
		}
	}
	return n
}

// prune forgets addresses that are idle and were last checked at least
// a gap before now: they are free to be checked at once.
func (s *scheduler) prune(now time.Time) {
	for ip, sl := range s.slots {
		if !sl.inflight && len(sl.pending) == 0 && !now.Before(sl.last.Add(s.gap)) {
			delete(s.slots, ip)
		}
	}
}
