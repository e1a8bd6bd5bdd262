package watch

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// finish takes in the result of a check: the cache learns each entry as
// the check left it, the scheduler drops what the check settled, and
// the findings are counted and logged.
func (l *loop) finish(r batchResult) {
	w := l.w
	l.batches--
	if r.sweep {
		l.sweepChecks--
	}
	now := time.Now()
	if w.cfg.OnCheck != nil {
		// Last: once the check is in the cache, the schedule and Stats.
		defer w.cfg.OnCheck(Check{Triggers: r.triggers, Report: r.report, Err: r.err})
	}
	if r.report == nil {
		w.smu.Lock()
		w.stats.CheckErrors++
		w.smu.Unlock()
		w.log.Error("check failed", "err", r.err, "peers", len(r.triggers))
		if isPermission(r.err) {
			l.fatal = r.err
		}
		for _, t := range r.triggers {
			l.sched.done(t.IP, func(Trigger) bool { return false })
		}
		return
	}
	if r.err != nil {
		w.log.Error("repair failed", "err", r.err)
		if isPermission(r.err) {
			l.fatal = r.err
		}
	}
	w.mu.Lock()
	var written []neighKey
	for i := range r.report.Peers {
		p := &r.report.Peers[i]
		if p.Ifindex == 0 {
			continue
		}
		k := neighKey{p.Ifindex, p.IP}
		if _, ok := w.cache[k]; !ok {
			continue // not watched, or gone meanwhile
		}
		if p.After != nil {
			a := *p.After
			a.IP = p.IP
			w.cache[k] = a
		} else {
			delete(w.cache, k)
		}
		written = append(written, k)
	}
	w.mu.Unlock()
	if len(written) > 0 {
		l.syncMismatch(written...)
	}
	for i := range r.report.Peers {
		p := &r.report.Peers[i]
		l.sched.done(p.IP, settledBy(p))
	}
	w.record(r, now)
	l.noteSweepEnd(now)
	// The addresses checked a gap ago or more need no slot: without it
	// they grow with every address ever checked (with tracepoints the
	// table is not polled, and sweeps may be an hour apart).
	l.sched.prune(now)
}

// settledBy returns whether a trigger raised while p was being checked
// is answered by p's check: the check asked about the trigger's MAC
// (the cached one, or one that answered). The kernel's own reactions to
// a check (an entry healed by the owner's reply, the repair's write)
// raise such triggers, and checking again would find nothing new.
func settledBy(p *arpprobe.Peer) func(Trigger) bool {
	return func(t Trigger) bool {
		switch p.Verdict {
		case arpprobe.VerdictUnknown:
			return false
		case arpprobe.VerdictOfflink:
			return true
		}
		if len(t.MAC) == 0 || p.Cached != nil && bytes.Equal(p.Cached.MAC, t.MAC) {
			return true
		}
		return slices.ContainsFunc(p.Replies, func(r arpprobe.Reply) bool { return bytes.Equal(r.MAC, t.MAC) })
	}
}

// record counts a check's findings and logs them.
func (w *Watcher) record(r batchResult, now time.Time) {
	causes := make(map[netip.Addr][]Trigger)
	for _, t := range r.triggers {
		causes[t.IP] = append(causes[t.IP], t)
	}
	rep := r.report
	w.smu.Lock()
	st := &w.stats
	st.Frames.SentUnicast += rep.Stats.SentUnicast
	st.Frames.SentBroadcast += rep.Stats.SentBroadcast
	st.Frames.Replies += rep.Stats.Replies
	st.Frames.KernelDrops += rep.Stats.KernelDrops
	for i := range rep.Peers {
		p := &rep.Peers[i]
		var counted []Cause
		for _, t := range causes[p.IP] {
			if !slices.Contains(counted, t.Cause) {
				st.Checks[t.Cause]++
				counted = append(counted, t.Cause)
			}
			if t.Cause != CauseSweep {
				st.Lag.observe(now.Sub(t.At))
			}
		}
		if _, seen := w.verdicts[p.IP]; p.Verdict != arpprobe.VerdictUnknown || !seen {
			w.verdicts[p.IP] = judged(p)
		}
		if w.newAction(p) {
			st.Repairs[p.Action]++
		}
	}
	w.smu.Unlock()
	for i := range rep.Peers {
		w.logPeer(&rep.Peers[i], causes[rep.Peers[i].IP])
	}
}

// newAction reports whether p's action is one to count: an action
// that changed the entry (replaced, healed, deleted) always is; one
// that changed nothing (refused, would-replace, would-delete) only if
// the entry's previous check did not end in the same action on the
// same cached entry and owner. w.smu is held.
func (w *Watcher) newAction(p *arpprobe.Peer) bool {
	k := neighKey{p.Ifindex, p.IP}
	switch p.Action {
	case arpprobe.ActionRefused, arpprobe.ActionWouldReplace, arpprobe.ActionWouldDelete:
		a := idleAction{action: p.Action, owner: p.Owner.String()}
		if p.Cached != nil {
			a.cached = p.Cached.MAC.String() + " " + p.Cached.State.String()
		}
		if w.idle[k] == a {
			return false
		}
		w.idle[k] = a
		return true
	case arpprobe.ActionNone, "":
		if p.Verdict != arpprobe.VerdictUnknown {
			delete(w.idle, k) // the situation ended; unknown says nothing
		}
		return false
	}
	delete(w.idle, k)
	return true
}

// judged is a peer's verdict after its repair: a stale entry replaced
// or found healed is ok now.
func judged(p *arpprobe.Peer) arpprobe.Verdict {
	if p.Verdict == arpprobe.VerdictStale && (p.Action == arpprobe.ActionReplaced || p.Action == arpprobe.ActionHealed) {
		return arpprobe.VerdictOK
	}
	return p.Verdict
}

// logPeer logs one checked peer: findings at warning level, repairs at
// info level, healthy entries at debug level only.
func (w *Watcher) logPeer(p *arpprobe.Peer, ts []Trigger) {
	var cs []string
	for _, t := range ts {
		if !slices.Contains(cs, string(t.Cause)) {
			cs = append(cs, string(t.Cause))
		}
	}
	attrs := []any{"ip", p.IP, "interface", p.Interface, "verdict", p.Verdict, "action", p.Action,
		"cause", strings.Join(cs, ",")}
	if p.Cached != nil {
		attrs = append(attrs, "cached_mac", p.Cached.MAC.String(), "cached_state", p.Cached.State)
	}
	if p.Owner != nil {
		attrs = append(attrs, "owner", p.Owner.String())
	}
	if p.Verdict == arpprobe.VerdictConflict {
		var macs []string
		for _, r := range p.Replies {
			macs = append(macs, r.MAC.String())
		}
		attrs = append(attrs, "macs", strings.Join(macs, ","))
	}
	if p.Reason != "" {
		attrs = append(attrs, "reason", p.Reason)
	}
	switch {
	case p.Action == arpprobe.ActionReplaced || p.Action == arpprobe.ActionDeleted:
		w.log.Info("repaired", attrs...)
	case p.Action == arpprobe.ActionHealed:
		w.log.Info("stale entry already healed by the kernel", attrs...)
	case p.Verdict == arpprobe.VerdictStale:
		w.log.Warn("stale entry", attrs...)
	case p.Verdict == arpprobe.VerdictConflict:
		w.log.Warn("address in conflict", attrs...)
	case p.Verdict == arpprobe.VerdictDead:
		w.log.Warn("peer dead", attrs...)
	case p.Verdict == arpprobe.VerdictUnknown:
		w.log.Warn("could not check", attrs...)
	default:
		w.log.Debug("checked", attrs...)
	}
}
