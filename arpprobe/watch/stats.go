package watch

import (
	"maps"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Stats counts what a Watcher has done since it started.
type Stats struct {
	// Entries counts the watched addresses by the verdict of their latest
	// check, judged after its repair (a stale entry replaced or found
	// healed counts as ok); addresses not checked yet are not counted.
	Entries map[arpprobe.Verdict]int
	// Checks counts the checks of an address by cause; a check asked for
	// by several causes counts under each.
	Checks map[Cause]uint64
	// Repairs counts the actions other than none taken on checked
	// entries. An action that changes nothing (refused, would-replace,
	// would-delete) is counted once for an entry, cached MAC and owner:
	// the checks that find the entry so again, at every sweep, are not
	// counted again.
	Repairs map[arpprobe.Action]uint64
	// Frames counts the frames of every check (sent, replies, kernel
	// drops) and, in Received and Dropped, every frame the Watcher's
	// sockets received, requests of other hosts included.
	Frames arpprobe.Stats
	// Events counts the kernel's neighbour events received.
	Events uint64
	// Resyncs counts the times the event or tracer subscription ended
	// (events lost: ENOBUFS, a full ring buffer) and the table was read
	// again.
	Resyncs uint64
	// DelaySource is what shows entries entering DELAY now: the neigh
	// tracepoints, a read of the table every Poll, or none.
	DelaySource DelaySource
	// TraceEvents counts the entries the tracer reported entering DELAY.
	TraceEvents uint64
	// Sightings counts ARP requests and announcements that showed a
	// watched address with another MAC than the cached one;
	// SightingsDropped those not handled because too many were queued.
	Sightings, SightingsDropped uint64
	// CheckErrors counts checks that could not run at all.
	CheckErrors uint64
	// Sweeps counts sweeps started; LastSweep is when the latest one
	// ended, SweepDuration how long it took.
	Sweeps        uint64
	LastSweep     time.Time
	SweepDuration time.Duration
	// Lag is the time from a kernel event or ARP sighting to the end of
	// the check it asked for: waiting (coalescing, rate limit) plus
	// checking, counted in buckets. Lag.Bounds are the buckets' upper
	// bounds, ascending: 10, 25, 50, 100, 250 and 500 ms, 1, 2.5, 5, 10
	// and 30 s and a minute. Lag.Counts[i] counts the observations in
	// (Bounds[i-1], Bounds[i]], Lag.Counts[len(Bounds)] those above the
	// last; Lag.Count and Lag.Sum are their number and total.
	Lag histogram
}

// histogram counts durations in buckets (see Stats.Lag).
type histogram struct {
	// Bounds are the buckets' upper bounds, ascending.
	Bounds []time.Duration
	// Counts[i] counts the observations in (Bounds[i-1], Bounds[i]];
	// Counts[len(Bounds)] those above the last bound.
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// lagBounds are the bucket bounds of Stats.Lag.
var lagBounds = []time.Duration{
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

func newHistogram(bounds []time.Duration) histogram {
	return histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(h.Bounds) && d > h.Bounds[i] {
		i++
	}
	h.Counts[i]++
	h.Count++
	h.Sum += d
}

func newStats() Stats {
	return Stats{
		Checks:  make(map[Cause]uint64),
		Repairs: make(map[arpprobe.Action]uint64),
		Lag:     newHistogram(lagBounds),
	}
}

// Stats returns a copy of the Watcher's counters. It is safe to call
// from any goroutine, at any time.
func (w *Watcher) Stats() Stats {
	w.smu.Lock()
	s := w.stats
	s.Checks = maps.Clone(s.Checks)
	s.Repairs = maps.Clone(s.Repairs)
	s.Lag.Counts = append([]uint64(nil), s.Lag.Counts...)
	s.Entries = make(map[arpprobe.Verdict]int)
	for _, v := range w.verdicts {
		s.Entries[v]++
	}
	w.smu.Unlock()
	c := w.prober.Stats()
	s.Frames.Received, s.Frames.Dropped = c.Received, c.Dropped
	return s
}
