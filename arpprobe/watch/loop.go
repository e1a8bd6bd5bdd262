package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// loop is the state of Run, owned by its goroutine.
type loop struct {
	w     *Watcher
	sched *scheduler
	links []arpprobe.Link

	events subscription // Events
	trace  subscription // Trace
	source DelaySource  // what shows entries entering DELAY, as last logged

	results    chan batchResult
	batches    int       // checks under way
	sweepStart time.Time // zero when no sweep is under way
	// sweepQueue holds the sweep's triggers not yet handed to the
	// scheduler (see sweepChunk); sweepChecks counts the checks under
	// way that hold sweep triggers.
	sweepQueue  []Trigger
	sweepChecks int
	listenErrs  map[int]string
	seen        map[seenKey]seenEntry    // every IPv4 entry of the last read, for poll
	seenGen     uint32                   // the number of the latest read
	changed     []arpprobe.Neighbor      // poll's scratch
	scanOne     func(*arpprobe.Neighbor) // l.scanned, bound once
	syns        map[int]*packet.Conn     // the IPv4 sockets, by interface index
	// mismatch is the eBPF filter of the IPv4 sockets, if it could be
	// loaded (mismatchTried); without it they take TCP SYNs only.
	mismatch      *mismatchFilter
	mismatchTried bool
	readErr       string // the latest error reading the table, logged once

	fatal error
}

type batchResult struct {
	triggers []Trigger
	report   *arpprobe.Report
	err      error
	sweep    bool
}

func (l *loop) run(ctx context.Context) error {
	w := l.w
	l.events.src, l.trace.src = w.cfg.Events, w.cfg.Trace
	if w.cfg.Events != nil {
		if err := l.events.open(ctx, false); err != nil {
			return fmt.Errorf("watch: subscribe to neighbour events: %w", err)
		}
	}
	defer l.events.close()
	// Before the first read: an entry entering DELAY after it is seen.
	if w.cfg.Trace != nil {
		err := l.trace.open(ctx, false)
		if err != nil && !isPermission(err) {
			l.trace.retryLater()
		}
		l.noteSource(err)
	} else {
		l.noteSource(nil)
	}
	defer l.trace.close()
	if err := l.refreshLinks(ctx); err != nil {
		return err
	}
	if name := w.cfg.Check.Interface; name != "" && !slices.ContainsFunc(l.links, func(k arpprobe.Link) bool { return k.Name == name }) {
		return fmt.Errorf("watch: interface %q: %w", name, arpprobe.ErrUnknownInterface)
	}
	if err := l.refresh(ctx, true); err != nil {
		return err
	}
	now := time.Now()
	l.sweep(now)
	nextPoll, nextSweep := now.Add(w.cfg.Poll), now.Add(w.cfg.Interval)
	if w.cfg.Poll < 0 {
		nextPoll = time.Time{}
	}
	if w.cfg.Interval < 0 {
		nextSweep = time.Time{}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now = time.Now()
		l.feedSweep()
		if l.batches < maxChecks {
			if ts := l.sched.take(now); len(ts) > 0 {
				l.start(ctx, ts)
			}
		}
		var wake time.Time
		if l.batches < maxChecks {
			wake = l.sched.next()
		}
		poll := nextPoll
		if !l.polling() {
			poll = time.Time{}
		}
		for _, t := range []time.Time{poll, nextSweep, l.events.retryAt, l.trace.retryAt} {
			if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
				wake = t
			}
		}
		if wake.IsZero() {
			wake = now.Add(time.Hour)
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			l.shutdown()
			return nil
		case ev, ok := <-l.events.events:
			if !ok || ev.Err != nil {
				l.subscriptionEnded(ctx, ev.Err)
				break
			}
			l.event(ctx, ev)
		case ev, ok := <-l.trace.events:
			if !ok || ev.Err != nil {
				l.traceEnded(ctx, ev.Err)
				nextPoll = time.Now().Add(w.cfg.Poll)
				break
			}
			l.traced(ev)
		case s := <-w.sightings:
			l.sighting(s)
		case r := <-l.results:
			l.finish(r)
			if l.fatal != nil {
				l.shutdown()
				return l.fatal
			}
		case <-w.reload:
			// Entries newly watched did not appear; the sweep checks
			// them all.
			l.refresh(ctx, true)
			nextSweep = now // sweep the new list at once
		case <-timer.C:
		}
		l.notePeaks()
		now = time.Now()
		if l.events.due(now) {
			if l.resubscribe(ctx) == nil {
				l.refresh(ctx, false) // what changed while no events came
			}
		}
		if l.trace.due(now) {
			err := l.trace.open(ctx, true)
			l.noteSource(err)
			if err == nil {
				l.refresh(ctx, false)
			}
		}
		if l.polling() && !nextPoll.IsZero() && !now.Before(nextPoll) {
			l.poll(ctx)
			nextPoll = now.Add(w.cfg.Poll)
		}
		if !nextSweep.IsZero() && !now.Before(nextSweep) {
			l.sched.prune(now)
			l.refreshLinks(ctx)
			l.refresh(ctx, false)
			l.sweep(now)
			nextSweep = now.Add(w.cfg.Interval)
			if w.cfg.Interval < 0 {
				nextSweep = time.Time{}
			}
		}
	}
}

// notePeaks records the scheduler's size in the Watcher's peaks.
func (l *loop) notePeaks() {
	for _, p := range []struct {
		peak *atomic.Int64
		n    int
	}{{&l.w.peakSlots, len(l.sched.slots)}, {&l.w.peakPending, l.sched.npending}} {
		if int64(p.n) > p.peak.Load() {
			p.peak.Store(int64(p.n))
		}
	}
}

// resubscribe subscribes to neighbour events again after a failure or
// the end of a subscription; if that fails it logs and arranges to try
// again later, with a growing wait.
func (l *loop) resubscribe(ctx context.Context) error {
	err := l.events.open(ctx, true)
	if err != nil {
		l.w.log.Warn("cannot subscribe to neighbour events; reading the table meanwhile",
			"err", fmt.Errorf("watch: subscribe to neighbour events: %w", err), "retry_in", l.events.delay)
	}
	return err
}

// subscriptionEnded handles the end of the event subscription before
// ctx: events may have been lost, so the table is read again after a
// new subscription.
func (l *loop) subscriptionEnded(ctx context.Context, err error) {
	l.events.ended()
	if ctx.Err() != nil {
		return
	}
	l.w.smu.Lock()
	l.w.stats.Resyncs++
	l.w.smu.Unlock()
	if err == nil {
		err = errors.New("subscription closed")
	}
	if errors.Is(err, ErrEventsLost) {
		l.w.log.Warn("neighbour events were lost; reading the table again", "err", err)
	} else {
		l.w.log.Warn("neighbour event subscription ended; subscribing again", "err", err)
	}
	if l.resubscribe(ctx) == nil {
		l.refresh(ctx, false)
	}
}

// refreshLinks reads the interfaces again.
func (l *loop) refreshLinks(ctx context.Context) error {
	links, err := l.w.cfg.Topology.Links(ctx)
	if err != nil {
		err = fmt.Errorf("watch: read interfaces: %w", err)
		l.w.log.Warn("cannot read interfaces", "err", err)
		return err
	}
	l.links = links
	return nil
}

// watched returns the entries of entries the Watcher watches: those
// arpprobe.PeersFromNeighbors would check, on Check.Interface if set, and in the
// peer list if there is one. Interface names are filled in.
func (l *loop) watched(entries []arpprobe.Neighbor) []arpprobe.Neighbor {
	w := l.w
	ps := arpprobe.PeersFromNeighbors(entries, l.links, w.cfg.Check.Interface)
	w.mu.RLock()
	peers := w.peers
	w.mu.RUnlock()
	keep := make(map[neighKey]string, len(ps))
	for _, p := range ps {
		if _, ok := peers[p.IP]; peers == nil || ok {
			keep[neighKey{p.Ifindex, p.IP}] = p.Interface
		}
	}
	out := make([]arpprobe.Neighbor, 0, len(keep))
	for _, n := range entries {
		k := neighKey{n.Ifindex, n.IP.Unmap()}
		if name, ok := keep[k]; ok {
			n.IP, n.Interface = k.ip, name
			out = append(out, n)
			delete(keep, k)
		}
	}
	return out
}

// knowsLinks reports whether every entry's interface is known, reading
// the interfaces again once if not.
func (l *loop) knowsLinks(ctx context.Context, entries []arpprobe.Neighbor) {
	for _, n := range entries {
		if !slices.ContainsFunc(l.links, func(k arpprobe.Link) bool { return k.Index == n.Ifindex }) {
			l.refreshLinks(ctx)
			return
		}
	}
}

// refresh reads the table and replaces the cache with its watched
// entries. Unless initial, every difference from the cache is handled
// as an event would be: this catches entries that went into DELAY,
// which raises no event, and events that were lost.
func (l *loop) refresh(ctx context.Context, initial bool) error {
	w := l.w
	entries, err := w.cfg.Table.Neighbors(ctx)
	if err != nil {
		err = fmt.Errorf("watch: read neighbour table: %w", err)
		if ctx.Err() == nil && err.Error() != l.readErr {
			w.log.Warn("cannot read the neighbour table", "err", err)
			l.readErr = err.Error()
		}
		return err
	}
	l.readErr = ""
	l.knowsLinks(ctx, entries)
	l.remember(entries)
	entries = l.watched(entries)
	now := time.Now()
	next := make(map[neighKey]arpprobe.Neighbor, len(entries))
	w.mu.RLock()
	old := w.cache
	w.mu.RUnlock()
	for _, n := range entries {
		k := neighKey{n.Ifindex, n.IP}
		next[k] = n
		if initial {
			continue
		}
		var prev *arpprobe.Neighbor
		if o, ok := old[k]; ok {
			prev = &o
		}
		if cause, ok := eventCause(prev, &n); ok {
			l.sched.add(Trigger{IP: n.IP, MAC: n.MAC, Cause: cause, At: now})
		}
	}
	w.mu.Lock()
	w.cache = next
	w.mu.Unlock()
	l.syncMismatch()
	l.forget()
	l.listen(entries)
	return nil
}

// forget drops the verdicts of addresses no longer watched.
func (l *loop) forget() {
	w := l.w
	w.mu.RLock()
	keep := make(map[netip.Addr]bool, len(w.cache)+len(w.list))
	for k := range w.cache {
		keep[k.ip] = true
	}
	for _, a := range w.list {
		keep[a] = true
	}
	w.mu.RUnlock()
	w.smu.Lock()
	for a := range w.verdicts {
		if !keep[a] {
			delete(w.verdicts, a)
		}
	}
	for k := range w.idle {
		if !keep[k.ip] {
			delete(w.idle, k)
		}
	}
	w.smu.Unlock()
}

// listen opens (or keeps open) the prober's socket on each interface
// that has watched entries, so that ARP on the wire is seen before any
// check runs there. A failure is logged once per interface and error.
func (l *loop) listen(entries []arpprobe.Neighbor) {
	if l.listenErrs == nil {
		l.listenErrs = make(map[int]string)
	}
	done := make(map[int]bool)
	for _, n := range entries {
		if done[n.Ifindex] {
			continue
		}
		done[n.Ifindex] = true
		err := l.w.prober.Listen(n.Ifindex)
		if err == nil {
			err = l.listenSYN(n.Ifindex)
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != l.listenErrs[n.Ifindex] {
			if err != nil {
				l.w.log.Warn("cannot listen for ARP and IPv4", "interface", n.Interface, "err", err)
			} else {
				l.w.log.Info("listening for ARP and IPv4 again", "interface", n.Interface)
			}
		}
		if err != nil {
			l.listenErrs[n.Ifindex] = msg
		} else {
			delete(l.listenErrs, n.Ifindex)
		}
	}
}

// event handles one kernel event.
func (l *loop) event(ctx context.Context, ev NeighborEvent) {
	l.w.smu.Lock()
	l.w.stats.Events++
	l.w.smu.Unlock()
	l.apply(ctx, ev)
}

// apply takes a change of one entry, from an event or a poll, into the
// cache, and asks for a check if it calls for one.
func (l *loop) apply(ctx context.Context, ev NeighborEvent) {
	w := l.w
	n := ev.Neighbor
	n.IP = n.IP.Unmap()
	k := neighKey{n.Ifindex, n.IP}
	var keep []arpprobe.Neighbor
	if !ev.Deleted {
		l.knowsLinks(ctx, []arpprobe.Neighbor{n})
		keep = l.watched([]arpprobe.Neighbor{n})
	}
	w.mu.Lock()
	old, had := w.cache[k]
	if len(keep) == 0 {
		delete(w.cache, k)
	} else {
		w.cache[k] = keep[0]
	}
	w.mu.Unlock()
	l.syncMismatch(k)
	if len(keep) == 0 {
		if had {
			l.forget()
		}
		return
	}
	var prev *arpprobe.Neighbor
	if had {
		prev = &old
	} else {
		l.listen(keep)
	}
	if cause, ok := eventCause(prev, &keep[0]); ok {
		l.sched.add(Trigger{IP: n.IP, MAC: n.MAC, Cause: cause, At: time.Now()})
	}
}

// sighting handles an ARP frame from another MAC than the cached one,
// if the cache still holds the other MAC.
func (l *loop) sighting(s sighting) {
	w := l.w
	w.mu.RLock()
	n, ok := w.cache[neighKey{s.ifindex, s.ip}]
	w.mu.RUnlock()
	if !ok || len(n.MAC) != 6 || [6]byte(n.MAC) == s.mac {
		return
	}
	// Only a SYN from the interface's own subnets came straight from its
	// host; a routed one carries the router's MAC. Judged against the
	// links as last read, so that addresses added since the socket opened
	// count.
	if s.cause == CauseIPv4 && !slices.ContainsFunc(l.links, func(k arpprobe.Link) bool { return k.Index == s.ifindex && onSubnet(s.ip, k.Addrs) }) {
		return
	}
	w.smu.Lock()
	w.stats.Sightings++
	w.smu.Unlock()
	mac := net.HardwareAddr(s.mac[:])
	what := "ARP from another MAC than the cached one"
	if s.cause == CauseIPv4 {
		what = "an IPv4 frame from another MAC than the cached one"
	}
	w.log.Debug(what, "ip", s.ip, "interface", n.Interface,
		"cached_mac", n.MAC.String(), "cached_state", n.State, "announced_mac", mac.String())
	l.sched.add(Trigger{IP: s.ip, MAC: mac, Cause: s.cause, At: s.at})
}

// sweep asks for a check of every watched address (the peer list, or
// every watched entry). The addresses go to the scheduler a chunk at a
// time (feedSweep), which leaves out those whose entries all lie idle in
// STALE and were found right by their last check: checking them would
// make them REACHABLE (see Watcher).
func (l *loop) sweep(now time.Time) {
	w := l.w
	w.mu.RLock()
	addrs := slices.Clone(w.list)
	macs := make(map[netip.Addr]net.HardwareAddr, len(w.cache))
	for k, n := range w.cache {
		macs[k.ip] = n.MAC
		if w.list == nil {
			addrs = append(addrs, k.ip)
		}
	}
	w.mu.RUnlock()
	w.smu.Lock()
	w.stats.Sweeps++
	w.smu.Unlock()
	l.sweepStart = now
	l.sweepQueue = l.sweepQueue[:0]
	for _, a := range uniq(addrs) {
		l.sweepQueue = append(l.sweepQueue, Trigger{IP: a, MAC: macs[a], Cause: CauseSweep, At: now})
	}
	l.feedSweep()
}

// idleFoundRight reports whether every entry of a lies idle in STALE
// and a's last check found it right, as the cache and the verdicts stand
// now.
func (l *loop) idleFoundRight(a netip.Addr) bool {
	w := l.w
	w.mu.RLock()
	cached, idle := false, true
	for _, k := range l.links {
		if n, ok := w.cache[neighKey{k.Index, a}]; ok {
			cached, idle = true, idle && n.State == arpprobe.StateStale
		}
	}
	w.mu.RUnlock()
	if !cached || !idle {
		return false
	}
	w.smu.Lock()
	defer w.smu.Unlock()
	return w.verdicts[a] == arpprobe.VerdictOK
}

// feedSweep hands the scheduler the sweep's next sweepChunk addresses
// once it holds none of the sweep's triggers and fewer than
// maxSweepChecks checks of the sweep are under way, leaving out the
// addresses idle and found right as things stand now (by a check of an
// earlier chunk too), and notes the sweep's end if nothing is left.
func (l *loop) feedSweep() {
	if l.sweepStart.IsZero() {
		return // no sweep under way
	}
	if len(l.sweepQueue) > 0 && l.sched.nsweep == 0 && l.sweepChecks < maxSweepChecks {
		n := 0
		for n < len(l.sweepQueue) && l.sched.nsweep < sweepChunk {
			if t := l.sweepQueue[n]; !l.idleFoundRight(t.IP) {
				l.sched.add(t)
			}
			n++
		}
		l.sweepQueue = l.sweepQueue[n:]
		if len(l.sweepQueue) == 0 {
			l.sweepQueue = nil // let go of the backing array
		}
	}
	l.noteSweepEnd(time.Now())
}

// noteSweepEnd records the end of the sweep under way in Stats, if it
// has been handed out and checked whole.
func (l *loop) noteSweepEnd(now time.Time) {
	if l.sweepStart.IsZero() || len(l.sweepQueue) > 0 || l.sweepChecks > 0 || l.sched.nsweep > 0 {
		return
	}
	l.w.smu.Lock()
	l.w.stats.LastSweep, l.w.stats.SweepDuration = now, now.Sub(l.sweepStart)
	l.w.smu.Unlock()
	l.sweepStart = time.Time{}
}

// start runs one check of the triggers' addresses on a goroutine of its
// own.
func (l *loop) start(ctx context.Context, ts []Trigger) {
	var addrs []netip.Addr
	sweep := false
	for i, t := range ts {
		if i == 0 || t.IP != ts[i-1].IP {
			addrs = append(addrs, t.IP)
		}
		sweep = sweep || t.Cause == CauseSweep
	}
	l.batches++
	if sweep {
		l.sweepChecks++
	}
	go func() {
		rep, err := l.w.checker.Check(ctx, addrs, l.w.cfg.Check)
		l.results <- batchResult{triggers: ts, report: rep, err: err, sweep: sweep}
	}()
}

// shutdown waits for the checks under way; ctx is done, so they end
// quickly.
func (l *loop) shutdown() {
	for ; l.batches > 0; l.batches-- {
		<-l.results
	}
}
