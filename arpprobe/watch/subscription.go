package watch

import (
	"context"
	"errors"
	"time"
)

// subscription is a Watcher's subscription to one NeighborEventSource:
// Events or Trace. It belongs to the watch loop's goroutine.
type subscription struct {
	src    NeighborEventSource
	events <-chan NeighborEvent // nil when not subscribed: never ready in a select
	cancel context.CancelFunc
	// retryAt is when to subscribe again; zero: subscribed, or not to
	// try again. delay is the wait before it, doubled at each failure.
	retryAt time.Time
	delay   time.Duration
}

// open subscribes. If that fails and retry is set, it arranges to try
// again later, with a growing wait.
func (s *subscription) open(ctx context.Context, retry bool) error {
	sctx, cancel := context.WithCancel(ctx)
	events, err := s.src.SubscribeNeighbors(sctx)
	if err != nil {
		cancel()
		if retry {
			s.retryLater()
		}
		return err
	}
	s.events, s.cancel, s.retryAt, s.delay = events, cancel, time.Time{}, 0
	return nil
}

// retryLater arranges to subscribe again after a growing wait.
func (s *subscription) retryLater() {
	s.delay = min(max(2*s.delay, 100*time.Millisecond), resubscribeMax)
	s.retryAt = time.Now().Add(s.delay)
}

// due reports whether it is time to subscribe again.
func (s *subscription) due(now time.Time) bool {
	return !s.retryAt.IsZero() && !now.Before(s.retryAt)
}

// ended forgets a subscription whose channel closed.
func (s *subscription) ended() {
	if s.cancel != nil {
		s.cancel()
	}
	s.events, s.cancel = nil, nil
}

// close cancels the subscription and waits, at most 5 s, for the source
// to close its channel, which it does once it has let go of its socket
// or program.
func (s *subscription) close() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	timeout := time.After(5 * time.Second)
	for s.events != nil {
		select {
		case _, ok := <-s.events:
			if !ok {
				s.events = nil
			}
		case <-timeout:
			s.events = nil
		}
	}
	s.cancel = nil
}

// DelaySource is what shows a Watcher the entries that enter DELAY: a
// STALE entry's first use, or a REACHABLE one running out of reachable
// time while in use. The kernel sends no netlink event for either.
type DelaySource string

// The sources of Stats.DelaySource.
const (
	// DelaySourceTracepoints: the kernel's neigh tracepoints
	// (Config.Trace), at once and without reading the table.
	DelaySourceTracepoints DelaySource = "tracepoints"
	// DelaySourcePoll: a read of the table every Config.Poll.
	DelaySourcePoll DelaySource = "poll"
	// DelaySourceNone: neither; such entries are checked when the
	// kernel probes them (PROBE, about 5 s later) or at a sweep.
	DelaySourceNone DelaySource = "none"
)

// DelaySources lists the sources, in the order metrics show them.
var DelaySources = []DelaySource{DelaySourceTracepoints, DelaySourcePoll, DelaySourceNone}

// polling reports whether the table is read every Poll: when Poll is
// set and no tracer subscription stands in for it.
func (l *loop) polling() bool {
	return l.w.cfg.Poll > 0 && l.trace.events == nil
}

// noteSource records which source shows entries entering DELAY, and
// logs it when it changes; err is why the tracer could not be used.
func (l *loop) noteSource(err error) {
	src := DelaySourceNone
	switch {
	case l.trace.events != nil:
		src = DelaySourceTracepoints
	case l.w.cfg.Poll > 0:
		src = DelaySourcePoll
	}
	w := l.w
	w.smu.Lock()
	w.stats.DelaySource = src
	w.smu.Unlock()
	if src == l.source {
		return
	}
	l.source = src
	attrs := []any{"delay_source", src}
	if err != nil {
		attrs = append(attrs, "tracepoints", err)
	}
	switch src {
	case DelaySourceTracepoints:
		w.log.Info("entries entering DELAY are seen through the kernel's neigh tracepoints; the table is not polled", attrs...)
	case DelaySourcePoll:
		w.log.Info("entries entering DELAY are seen by reading the table every "+w.cfg.Poll.String(), attrs...)
	default:
		w.log.Info("entries entering DELAY are not watched: no tracepoints, no polling", attrs...)
	}
}

// traced handles an entry the tracer saw enter DELAY: if it is watched,
// the cache takes its state, and it is checked as an event would have it.
// An entry not cached yet is left to its own netlink event or the next
// read of the table.
func (l *loop) traced(ev NeighborEvent) {
	w := l.w
	n := ev.Neighbor
	k := neighKey{n.Ifindex, n.IP.Unmap()}
	w.mu.Lock()
	old, ok := w.cache[k]
	cur := old
	if ok {
		cur.State = n.State
		if len(n.MAC) == 6 {
			cur.MAC = n.MAC
		}
		w.cache[k] = cur
	}
	w.mu.Unlock()
	if ok {
		l.syncMismatch(k)
	}
	w.smu.Lock()
	w.stats.TraceEvents++
	w.smu.Unlock()
	if !ok {
		return
	}
	if cause, ok := eventCause(&old, &cur); ok {
		l.sched.add(Trigger{IP: k.ip, MAC: cur.MAC, Cause: cause, At: time.Now()})
	}
}

// traceEnded handles the end of the tracer's subscription before ctx:
// entries may have entered DELAY unseen, so the table is read at once,
// and every Poll until the tracer is back.
func (l *loop) traceEnded(ctx context.Context, err error) {
	l.trace.ended()
	if ctx.Err() != nil {
		return
	}
	w := l.w
	w.smu.Lock()
	w.stats.Resyncs++
	w.smu.Unlock()
	if err == nil {
		err = errors.New("subscription closed")
	}
	w.log.Warn("neigh tracepoint subscription ended; subscribing again", "err", err)
	err = l.trace.open(ctx, true)
	l.noteSource(err)
	l.refresh(ctx, false)
}
