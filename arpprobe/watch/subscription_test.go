package watch

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// traceRig starts a rig whose Watcher has trace as its Trace and polls
// every 10 ms when the tracer is not in use.
func traceRig(t *testing.T, trace *watchEvents, entries ...arpprobe.Neighbor) *watchRig {
	r := newWatchRig(t, entries...)
	for _, n := range entries {
		r.setHost(n.IP.String(), n.MAC)
	}
	return r.start(Config{Check: arpprobe.Options{Repair: &arpprobe.RepairPolicy{}}, Interval: time.Hour,
		Poll: 10 * time.Millisecond, Trace: trace}, false)
}

// reads returns how many times the table was read.
func (r *watchRig) reads() int {
	return r.tbl.Reads()
}

// waitStats waits until the Watcher's stats satisfy ok.
func (r *watchRig) waitStats(what string, ok func(Stats) bool) Stats {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.w.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no %s within 10 s: stats %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With the tracer subscribed, an entry entering DELAY is checked from
// the tracer's event, and the table is not read every Poll.
func TestWatchTraceSeesDelay(t *testing.T) {
	t.Parallel()
	trace := newWatchEvents()
	r := traceRig(t, trace, watchNeigh("198.18.0.2", macA, arpprobe.StateStale))
	if st := r.w.Stats(); st.DelaySource != DelaySourceTracepoints {
		t.Fatalf("delay source %q; want tracepoints", st.DelaySource)
	}
	before := r.reads()
	time.Sleep(30 * 10 * time.Millisecond) // 30 polls, were the table polled
	if n := r.reads() - before; n != 0 {
		t.Errorf("the table was read %d times in 30 Polls with the tracer subscribed; want 0", n)
	}
	r.setHost("198.18.0.2", macB)
	// No netlink event: the kernel sends none; the tracer does.
	trace.send(r.setEntry("198.18.0.2", macA, arpprobe.StateDelay))
	c, _ := r.waitCheck("the traced entry", func(c Check) bool { return watchHasCause(c, CauseState) })
	if p := watchPeer(t, c, "198.18.0.2"); p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced {
		t.Errorf("verdict %s, action %s; want stale, replaced", p.Verdict, p.Action)
	}
	if st := r.w.Stats(); st.TraceEvents != 1 {
		t.Errorf("%d trace events; want 1", st.TraceEvents)
	}
}

// Without the tracer the Watcher reads the table every Poll: when it
// may not load the tracer (for good), when the tracer fails to subscribe
// (until it can), and when its subscription ends (events lost).
func TestWatchTraceFallback(t *testing.T) {
	t.Parallel()
	polled := func(r *watchRig) {
		t.Helper()
		before := r.reads()
		deadline := time.Now().Add(10 * time.Second)
		for r.reads() < before+3 {
			if time.Now().After(deadline) {
				t.Fatalf("the table was read %d times in 10 s; want polls", r.reads()-before)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Run("permission", func(t *testing.T) {
		t.Parallel()
		trace := &permissionSource{}
		r := newWatchRig(t, watchNeigh("198.18.0.2", macA, arpprobe.StateStale))
		r.setHost("198.18.0.2", macA)
		r.start(Config{Interval: time.Hour, Poll: 10 * time.Millisecond, Trace: trace}, false)
		if st := r.w.Stats(); st.DelaySource != DelaySourcePoll {
			t.Errorf("delay source %q; want poll", st.DelaySource)
		}
		polled(r)
		if n := trace.calls(); n != 1 {
			t.Errorf("%d subscriptions tried after a permission error; want 1", n)
		}
	})
	t.Run("retry", func(t *testing.T) {
		t.Parallel()
		trace := newWatchEvents()
		trace.failNext = 2
		r := traceRig(t, trace, watchNeigh("198.18.0.2", macA, arpprobe.StateStale))
		r.waitStats("subscription after two failures", func(st Stats) bool { return st.DelaySource == DelaySourceTracepoints })
	})
	t.Run("lost", func(t *testing.T) {
		t.Parallel()
		trace := newWatchEvents()
		r := traceRig(t, trace, watchNeigh("198.18.0.2", macA, arpprobe.StateStale))
		trace.mu.Lock()
		trace.failNext = 1000 // it stays down
		trace.mu.Unlock()
		r.setHost("198.18.0.2", macB)
		r.setEntry("198.18.0.2", macA, arpprobe.StateDelay) // entered DELAY while events were lost
		trace.end(trace.current(), fmt.Errorf("fake: %w", ErrEventsLost))
		r.waitCheck("the entry that entered DELAY unseen", func(c Check) bool { return watchHasCause(c, CauseState) })
		st := r.waitStats("the fallback", func(st Stats) bool { return st.DelaySource == DelaySourcePoll })
		if st.Resyncs != 1 {
			t.Errorf("%d resyncs; want 1", st.Resyncs)
		}
		polled(r)
	})
}

// permissionSource refuses every subscription, as the kernel does
// without CAP_BPF, and counts the tries.
type permissionSource struct{ watchEvents }

func (p *permissionSource) SubscribeNeighbors(ctx context.Context) (<-chan NeighborEvent, error) {
	p.mu.Lock()
	p.failed++
	p.mu.Unlock()
	return nil, fmt.Errorf("fake: load: %w", os.ErrPermission)
}

func (p *permissionSource) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}
