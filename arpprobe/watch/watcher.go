package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// The defaults of Config, in one place.
const (
	// DefaultInterval is the time between two sweeps of the watched
	// addresses: the bound on finding a wrong entry that raises no event
	// and whose new owner stays silent (a PERMANENT entry, or one kept
	// REACHABLE by traffic).
	DefaultInterval = time.Minute
	// DefaultPoll is the time between two reads of the neighbour
	// table. The kernel announces no event when an entry in use goes
	// from STALE to DELAY, so reading the table is the only way to see
	// traffic start towards a STALE entry; the read also catches any
	// event that was lost.
	DefaultPoll = 250 * time.Millisecond
	// Gap is the least time between two checks of one address, as
	// RFC 1122 (2.3.2.1) asks: at most about one request per second per
	// destination.
	Gap = time.Second
	// DefaultTimeout is how long a Watcher's checks wait for replies
	// to one attempt, unless Check.Probe.Timeout says otherwise: far less
	// than DefaultTimeout, because an entry under suspicion is failing
	// traffic meanwhile, and a stale entry takes two silent attempts to
	// find: with 60 ms, an entry whose first use showed it wrong is
	// repaired about 0.16 s after that use (ttrlab's silent rows). A host
	// on the LAN answers ARP from its kernel, within a millisecond even
	// when loaded; a reply the prober's kernel received in time counts,
	// however late the prober reads it. Links slower than that (an
	// overlay stretched between sites) want a longer Check.Probe.Timeout
	// (watch --timeout).
	DefaultTimeout = 60 * time.Millisecond
)

const (
	// watchCoalesce is how long a trigger waits for others, so that the
	// triggers of an event storm go out as one check.
	watchCoalesce = 20 * time.Millisecond
	// watchBatches is the most checks a Watcher runs at once.
	watchBatches = 4
	// watchSightings is how many ARP sightings the readers may queue.
	watchSightings = 1024
	// watchPerCause is the most triggers of one cause, each with its
	// own MAC, that wait for one address; further ones merge into the
	// earliest (see scheduler.add), so that a flood of frames claiming
	// an address with ever new MACs costs no more memory.
	watchPerCause = 4
	// resubscribeMax bounds the wait between attempts to subscribe to
	// neighbour events again.
	resubscribeMax = 30 * time.Second
)

// NeighborEvent is one change of the kernel's IPv4 neighbour table.
type NeighborEvent struct {
	// Neighbor is the entry after the change (before it, when deleted).
	// Its Interface may be empty.
	Neighbor arpprobe.Neighbor
	Deleted  bool
	// Err, set only on the last event of a subscription that ended
	// before its ctx, says why: it wraps ErrEventsLost when the kernel
	// dropped events because they were not read fast enough.
	Err error
}

// ErrEventsLost is wrapped by NeighborEvent.Err when the kernel dropped
// neighbour events (ENOBUFS): the table must be read again.
var ErrEventsLost = errors.New("neighbour events lost")

// NeighborEventSource reports changes of the kernel's neighbour table as
// they happen. NeighborMonitor is the real one; tests use fakes.
type NeighborEventSource interface {
	// SubscribeNeighbors subscribes and returns once events flow: a change
	// made after it returns is reported. Events arrive on the channel
	// until ctx is done, when the channel is closed, or until the
	// subscription fails, when its last event carries Err and the channel
	// is closed.
	SubscribeNeighbors(ctx context.Context) (<-chan NeighborEvent, error)
}

// Config configures a Watcher. Table and Topology are required.
type Config struct {
	Table    arpprobe.NeighborTable
	Topology arpprobe.Topology
	// Events, if set, reports changes of the table as they happen; without
	// it they are seen at the next poll.
	Events NeighborEventSource
	// Trace, if set, reports entries as they enter DELAY, which no event
	// of Events announces (NeighborTracer: the kernel's neigh
	// tracepoints). While its subscription holds, the Watcher does not
	// read the table every Poll; if it cannot subscribe (no CAP_BPF and
	// CAP_PERFMON) or its subscription ends, the Watcher reads the table
	// every Poll meanwhile. Stats.DelaySource says which is in use.
	Trace NeighborEventSource
	// Prober configures the prober the Watcher makes. A nil Listen means
	// ListenConfig{Requests: true}.Listen: the sockets receive other
	// hosts' requests too, which the Watcher needs to see announcements.
	// A Tap is called as well as the Watcher's own.
	Prober arpprobe.ProberConfig
	// Check is what each check does: the interface, how peers are asked
	// and, with Repair set, the repair policy, exactly as for
	// Checker.Check, except that a zero Probe.Timeout means
	// DefaultTimeout.
	Check arpprobe.Options
	// Peers, if set, limits the Watcher to these addresses, which are
	// swept whether or not they have an entry; nil watches every IPv4
	// entry of the table (as PeersFromNeighbors chooses them). SetPeers
	// changes the list while the Watcher runs.
	Peers []netip.Addr
	// Interval is the time between sweeps; zero means
	// DefaultInterval, a negative value no sweeps but the first.
	Interval time.Duration
	// Poll is the time between reads of the table when Trace is not in
	// use; zero means DefaultPoll, a negative value none (then
	// entries that start being used while STALE are caught only by the
	// kernel's PROBE event about 5 s later, or by a sweep).
	Poll time.Duration
	// Logger receives a record for every finding and repair, and for
	// trouble (lost events, failed checks); nil discards them. Healthy
	// checks are logged at debug level only.
	Logger *slog.Logger
	// OnCheck, if set, is called after each check with what asked for
	// it and its report, once the Watcher has taken it in (Stats count
	// it). It is called from the Watcher's goroutine, one call at a
	// time, and should return quickly.
	OnCheck func(Check)
}

// Check is one check a Watcher ran.
type Check struct {
	// Triggers are what asked for the check, ordered by address; an
	// address may have several.
	Triggers []Trigger
	// Report is the check's report; nil when it could not start.
	Report *arpprobe.Report
	// Err is the error of Checker.Check, if any.
	Err error
}

// A Watcher keeps the kernel's ARP cache right as it changes: it checks
// an entry as soon as a kernel event, a read of the table or an ARP
// frame on the wire gives reason to doubt it, and every watched address
// at each sweep. Each check is a Checker.Check of the addresses in
// question, with the same policy and safeguards as any other check.
//
// What makes it check an address:
//   - an entry starts being used while STALE (DELAY: only a read of the
//     table shows it, see DefaultPoll) or is probed by the kernel
//     (PROBE), changes MAC, or appears (kernel events);
//   - an ARP request or gratuitous announcement from another host shows
//     the address with a MAC other than the cached one, as arpwatch
//     notices it. This is what catches a PERMANENT entry whose address
//     moved: such entries never change state and raise no event;
//   - an IPv4 frame from an address of the interface's own subnet with
//     another source MAC than the cached one (CauseIPv4): the new owner
//     of a recycled address speaking before it sent any ARP the host
//     could see. Where the process may load eBPF (CAP_BPF), a socket
//     filter looks every IPv4 frame's source up in a map of the watched
//     entries' MACs and passes only a mismatch, at most one a second per
//     entry; without, a classic filter passes TCP SYNs only. Either way
//     user space sees no more than that, not the traffic; a frame routed
//     in from another subnet never counts (it carries the router's MAC);
//   - the sweep, every Interval, of every watched address except an
//     ordinary entry lying idle in STALE that a check has found right.
//
// A Watcher leaves an idle STALE entry alone on purpose. The owner's
// reply to a check makes the kernel mark the entry REACHABLE, and the
// kernel then trusts it, raising no event, for its reachable time (15
// to 45 s): a silent move of the address in that window would go
// unseen until it ran out, where a STALE entry shows its first use at
// once (DELAY). So an idle entry is checked when it is used, when it
// changes, when its address shows up on the wire with another MAC, and
// at the first sweep that finds it unchecked.
//
// It checks an address at most once per Gap and never twice at
// once; triggers raised within a few milliseconds of each other go out
// as one check.
//
// Cost when all is well: a read of the table per Poll (two netlink
// dumps), and a unicast request per entry each time it starts being
// used while STALE (at most about once per reachable time, 15 to 45 s,
// per entry in use) or is swept.
type Watcher struct {
	cfg     Config
	checker arpprobe.Checker
	prober  *arpprobe.Prober
	pin     *netnsPin
	// interfaceByIndex is the prober's, run in the pinned namespace.
	interfaceByIndex func(int) (*net.Interface, error)
	log              *slog.Logger
	ran              atomic.Bool
	running          atomic.Bool // while Run watches
	// peakSlots and peakPending are the most addresses the scheduler
	// has known at once and the most triggers it has held at once: the
	// watcher's state, which must stay bounded whatever arrives.
	peakSlots, peakPending atomic.Int64

	// The watched entries and the peer list, read by the tap on the
	// prober's reader goroutines.
	mu    sync.RWMutex
	cache map[neighKey]arpprobe.Neighbor
	peers map[netip.Addr]struct{} // nil: the whole table
	list  []netip.Addr

	sightings chan sighting
	reload    chan struct{}

	smu      sync.Mutex
	stats    Stats // without Entries and the link counters
	verdicts map[netip.Addr]arpprobe.Verdict
	// idle is, for each entry whose latest check ended in an action that
	// changes nothing (refused, would-*), that action and the situation
	// it was taken in, so that it is counted once, not at every check.
	idle map[neighKey]idleAction
}

// neighKey names a neighbour entry: its interface and address.
type neighKey struct {
	ifindex int
	ip      netip.Addr
}

// The ARP operations (RFC 826) that Frame.Op holds.
const (
	opRequest = 1
	opReply   = 2
)

// idleAction is an action that changed nothing, and what it was taken
// on: the cached entry and the owner that answered.
type idleAction struct {
	action        arpprobe.Action
	cached, owner string
}

// sighting is a frame from a watched address with another MAC than
// the cached one: ARP (CauseWire) or a TCP SYN (CauseIPv4).
type sighting struct {
	ifindex int
	ip      netip.Addr
	mac     [6]byte
	at      time.Time
	cause   Cause
}

// New returns a Watcher for cfg. It opens nothing until Run, but
// remembers the network namespace of the calling thread: the sockets
// the Watcher's prober opens later belong to it, whatever goroutine
// opens them.
func New(cfg Config) (*Watcher, error) {
	if cfg.Table == nil || cfg.Topology == nil {
		return nil, errors.New("arpprobe: watch: a Table and a Topology are required")
	}
	if cfg.Check.Probe.Timeout == 0 {
		cfg.Check.Probe.Timeout = DefaultTimeout
	}
	probe, err := cfg.Check.Probe.WithDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	w := &Watcher{
		cfg:       cfg,
		log:       cfg.Logger,
		cache:     make(map[neighKey]arpprobe.Neighbor),
		sightings: make(chan sighting, watchSightings),
		reload:    make(chan struct{}, 1),
		stats:     newStats(),
		verdicts:  make(map[netip.Addr]arpprobe.Verdict),
		idle:      make(map[neighKey]idleAction),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.setPeers(cfg.Peers)
	pc := cfg.Prober
	if pc.Listen == nil {
		pc.Listen = arpprobe.ListenConfig{Requests: true}.Listen
	}
	if pc.InterfaceByIndex == nil {
		pc.InterfaceByIndex = net.InterfaceByIndex
	}
	// The checks share the rates: however many checks a storm of events
	// or sightings asks for, together they send no more than one check
	// may (no amplification).
	if pc.Rate == 0 {
		pc.Rate = probe.Rate
	}
	if pc.BroadcastRate == 0 {
		pc.BroadcastRate = probe.BroadcastRate
	}
	userTap := pc.Tap
	pc.Tap = func(e arpprobe.TapEvent) {
		if userTap != nil {
			userTap(e)
		}
		w.tap(e)
	}
	pin, err := pinNetns()
	if err != nil {
		return nil, err
	}
	w.pin = pin
	pc = pin.proberConfig(pc)
	w.interfaceByIndex = pc.InterfaceByIndex
	w.prober = arpprobe.NewProber(pc)
	w.checker = arpprobe.Checker{Table: cfg.Table, Topology: cfg.Topology, Prober: w.prober}
	return w, nil
}

// SetPeers replaces the peer list (nil: every entry of the table) and,
// if Run is running, sweeps the new list at once. It is safe to call
// from any goroutine, such as a SIGHUP handler.
func (w *Watcher) SetPeers(peers []netip.Addr) {
	w.setPeers(peers)
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

func (w *Watcher) setPeers(peers []netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if peers == nil {
		w.peers, w.list = nil, nil
		return
	}
	w.list = uniq(peers)
	w.peers = make(map[netip.Addr]struct{}, len(w.list))
	for _, a := range w.list {
		w.peers[a] = struct{}{}
	}
}

// tap looks at every frame the prober receives, on its reader
// goroutines: an ARP request or gratuitous reply whose sender is a
// watched address with a MAC other than the cached one is queued as a
// sighting.
func (w *Watcher) tap(e arpprobe.TapEvent) {
	if e.Sent || e.Parsed == nil || e.Drop != arpprobe.DropNone {
		return
	}
	f := e.Parsed
	gratuitous := f.Op == opReply && (f.SenderIP == f.TargetIP || f.EtherDst == broadcastMAC)
	if f.Op != opRequest && !gratuitous {
		return // a reply to someone's request: the kernel and our checks see to those
	}
	if !f.SenderIP.Is4() || f.SenderIP.IsUnspecified() {
		return // an RFC 5227 probe claims nothing yet
	}
	w.mu.RLock()
	n, ok := w.cache[neighKey{e.Ifindex, f.SenderIP}]
	w.mu.RUnlock()
	if !ok || len(n.MAC) != 6 || [6]byte(n.MAC) == f.SenderMAC {
		return
	}
	w.sight(sighting{ifindex: e.Ifindex, ip: f.SenderIP, mac: f.SenderMAC, at: e.Time, cause: CauseWire})
}

// sight queues s if the cache holds another MAC for its address on its
// interface; a full queue drops it and counts the drop.
func (w *Watcher) sight(s sighting) {
	w.mu.RLock()
	n, ok := w.cache[neighKey{s.ifindex, s.ip}]
	w.mu.RUnlock()
	if !ok || len(n.MAC) != 6 || [6]byte(n.MAC) == s.mac {
		return
	}
	select {
	case w.sightings <- s:
	default:
		w.smu.Lock()
		w.stats.SightingsDropped++
		w.smu.Unlock()
	}
}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// eventCause says whether an entry that changed from old (nil: none) to
// cur calls for a check, and why. Entries without a usable MAC
// (INCOMPLETE, FAILED) are the kernel's to resolve; NOARP entries are
// not ARP's. Entering STALE calls for none: the entry is idle, and the
// owner's reply to a check would make the kernel mark it REACHABLE,
// hiding its next use for up to 45 s (see Watcher); its first use
// enters DELAY.
func eventCause(old, cur *arpprobe.Neighbor) (Cause, bool) {
	switch {
	case cur == nil || !cur.Usable() || cur.State&arpprobe.StateNoARP != 0:
		return "", false
	case !old.Usable():
		return CauseNew, true
	case !bytes.Equal(old.MAC, cur.MAC):
		return CauseMAC, true
	case cur.State&(arpprobe.StateDelay|arpprobe.StateProbe) != 0 && cur.State != old.State:
		return CauseState, true
	}
	return "", false
}

// Run watches until ctx is done, then finishes or abandons the checks
// under way (a repair in progress completes its write; none starts),
// closes its sockets and subscription and returns nil. It returns an
// error without watching if the table cannot be read or events cannot
// be subscribed to at the start, and stops with an error if checks fail
// for lack of privilege. Run may be called once.
//
// It sends frames (CAP_NET_RAW) and, with Check.Repair, writes entries
// (CAP_NET_ADMIN); subscribing to events needs no privilege.
func (w *Watcher) Run(ctx context.Context) error {
	if w.ran.Swap(true) {
		return errors.New("arpprobe: watch: Run called twice")
	}
	defer w.pin.Close()
	defer w.prober.Close()
	w.running.Store(true)
	defer w.running.Store(false)
	l := &watchLoop{
		w:       w,
		sched:   newScheduler(Gap, watchCoalesce, watchPerCause),
		results: make(chan batchResult, watchBatches),
	}
	defer l.closeSYNs()
	return l.run(ctx)
}

// watchLoop is the state of Run, owned by its goroutine.
type watchLoop struct {
	w     *Watcher
	sched *scheduler
	links []arpprobe.Link

	events subscription // Events
	trace  subscription // Trace
	source DelaySource  // what shows entries entering DELAY, as last logged

	results    chan batchResult
	batches    int       // checks under way
	sweepStart time.Time // zero when no sweep is under way
	listenErrs map[int]string
	seen       map[seenKey]seenEntry    // every IPv4 entry of the last read, for poll
	seenGen    uint32                   // the number of the latest read
	changed    []arpprobe.Neighbor      // poll's scratch
	scanOne    func(*arpprobe.Neighbor) // l.scanned, bound once
	syns       map[int]*packet.Conn     // the IPv4 sockets, by interface index
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

func (l *watchLoop) run(ctx context.Context) error {
	w := l.w
	l.events.src, l.trace.src = w.cfg.Events, w.cfg.Trace
	if w.cfg.Events != nil {
		if err := l.events.open(ctx, false); err != nil {
			return fmt.Errorf("arpprobe: watch: subscribe to neighbour events: %w", err)
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
		return fmt.Errorf("arpprobe: watch: interface %q: %w", name, arpprobe.ErrUnknownInterface)
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
		if l.batches < watchBatches {
			if ts := l.sched.take(now); len(ts) > 0 {
				l.start(ctx, ts)
			}
		}
		var wake time.Time
		if l.batches < watchBatches {
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
			l.sched.prune(now)
			nextPoll = now.Add(w.cfg.Poll)
		}
		if !nextSweep.IsZero() && !now.Before(nextSweep) {
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
func (l *watchLoop) notePeaks() {
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
func (l *watchLoop) resubscribe(ctx context.Context) error {
	err := l.events.open(ctx, true)
	if err != nil {
		l.w.log.Warn("cannot subscribe to neighbour events; reading the table meanwhile",
			"err", fmt.Errorf("arpprobe: watch: subscribe to neighbour events: %w", err), "retry_in", l.events.delay)
	}
	return err
}

// subscriptionEnded handles the end of the event subscription before
// ctx: events may have been lost, so the table is read again after a
// new subscription.
func (l *watchLoop) subscriptionEnded(ctx context.Context, err error) {
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
func (l *watchLoop) refreshLinks(ctx context.Context) error {
	links, err := l.w.cfg.Topology.Links(ctx)
	if err != nil {
		err = fmt.Errorf("arpprobe: watch: read interfaces: %w", err)
		l.w.log.Warn("cannot read interfaces", "err", err)
		return err
	}
	l.links = links
	return nil
}

// watched returns the entries of entries the Watcher watches: those
// PeersFromNeighbors would check, on Check.Interface if set, and in the
// peer list if there is one. Interface names are filled in.
func (l *watchLoop) watched(entries []arpprobe.Neighbor) []arpprobe.Neighbor {
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
func (l *watchLoop) knowsLinks(ctx context.Context, entries []arpprobe.Neighbor) {
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
func (l *watchLoop) refresh(ctx context.Context, initial bool) error {
	w := l.w
	entries, err := w.cfg.Table.Neighbors(ctx)
	if err != nil {
		err = fmt.Errorf("arpprobe: watch: read neighbour table: %w", err)
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
func (l *watchLoop) forget() {
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
func (l *watchLoop) listen(entries []arpprobe.Neighbor) {
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
func (l *watchLoop) event(ctx context.Context, ev NeighborEvent) {
	l.w.smu.Lock()
	l.w.stats.Events++
	l.w.smu.Unlock()
	l.apply(ctx, ev)
}

// apply takes a change of one entry, from an event or a poll, into the
// cache, and asks for a check if it calls for one.
func (l *watchLoop) apply(ctx context.Context, ev NeighborEvent) {
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
func (l *watchLoop) sighting(s sighting) {
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
// every watched entry) but those whose entries all lie idle in STALE and
// were found right by their last check: checking them would make them
// REACHABLE (see Watcher).
func (l *watchLoop) sweep(now time.Time) {
	w := l.w
	w.mu.RLock()
	addrs := slices.Clone(w.list)
	macs := make(map[netip.Addr]net.HardwareAddr, len(w.cache))
	idle := make(map[netip.Addr]bool, len(w.cache))
	for k, n := range w.cache {
		macs[k.ip] = n.MAC
		if w.list == nil {
			addrs = append(addrs, k.ip)
		}
		if was, seen := idle[k.ip]; !seen || was {
			idle[k.ip] = n.State == arpprobe.StateStale
		}
	}
	w.mu.RUnlock()
	w.smu.Lock()
	addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return idle[a] && w.verdicts[a] == arpprobe.VerdictOK })
	w.stats.Sweeps++
	if len(addrs) == 0 {
		w.stats.LastSweep, w.stats.SweepDuration = now, 0
	}
	w.smu.Unlock()
	if len(addrs) == 0 {
		return
	}
	l.sweepStart = now
	for _, a := range uniq(addrs) {
		l.sched.add(Trigger{IP: a, MAC: macs[a], Cause: CauseSweep, At: now})
	}
}

// start runs one check of the triggers' addresses on a goroutine of its
// own.
func (l *watchLoop) start(ctx context.Context, ts []Trigger) {
	var addrs []netip.Addr
	sweep := false
	for i, t := range ts {
		if i == 0 || t.IP != ts[i-1].IP {
			addrs = append(addrs, t.IP)
		}
		sweep = sweep || t.Cause == CauseSweep
	}
	l.batches++
	go func() {
		rep, err := l.w.checker.Check(ctx, addrs, l.w.cfg.Check)
		l.results <- batchResult{triggers: ts, report: rep, err: err, sweep: sweep}
	}()
}

// shutdown waits for the checks under way; ctx is done, so they end
// quickly.
func (l *watchLoop) shutdown() {
	for ; l.batches > 0; l.batches-- {
		<-l.results
	}
}

// closeSYNs closes the TCP SYN sockets, which ends their readers.
func (l *watchLoop) closeSYNs() {
	for i, c := range l.syns {
		c.Close()
		delete(l.syns, i)
	}
	if l.mismatch != nil {
		l.mismatch.Close()
		l.mismatch = nil
	}
}

// listenSYN opens, once per interface, the socket that sees TCP SYNs
// from the interface's subnets (see CauseIPv4), in the watcher's
// namespace, with a reader that queues sightings.
func (l *watchLoop) listenSYN(ifindex int) error {
	if l.syns[ifindex] != nil {
		return nil
	}
	ifi, err := l.w.interfaceByIndex(ifindex) // run in the watcher's namespace
	if err != nil {
		return fmt.Errorf("arpprobe: interface %d: %w", ifindex, err)
	}
	l.loadMismatch()
	var c *packet.Conn
	if err := l.w.pin.do(func() (err error) { c, err = listenSYN(ifi); return err }); err != nil {
		return err
	}
	parse := parseSYN
	if f := l.mismatch; f != nil {
		rc, err := c.SyscallConn()
		if err == nil {
			cerr := rc.Control(func(fd uintptr) { err = f.attach(int(fd)) })
			err = errors.Join(cerr, err)
		}
		if err != nil {
			c.Close()
			return err
		}
		parse = parseIPv4Source
	}
	if l.syns == nil {
		l.syns = make(map[int]*packet.Conn)
	}
	l.syns[ifindex] = c
	go l.w.readIPv4(c, ifindex, parse)
	return nil
}

// loadMismatch loads the eBPF filter of the IPv4 sockets, once, and
// says which filter they use.
func (l *watchLoop) loadMismatch() {
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
func (l *watchLoop) syncMismatch(keys ...neighKey) {
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

// finish takes in the result of a check: the cache learns each entry as
// the check left it, the scheduler drops what the check settled, and
// the findings are counted and logged.
func (l *watchLoop) finish(r batchResult) {
	w := l.w
	l.batches--
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
	if r.sweep && !l.sweepStart.IsZero() {
		w.smu.Lock()
		w.stats.LastSweep, w.stats.SweepDuration = now, now.Sub(l.sweepStart)
		w.smu.Unlock()
	}
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

// uniq returns addrs sorted, without repeats.
func uniq(addrs []netip.Addr) []netip.Addr {
	out := slices.Clone(addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// isPermission reports whether err comes from a lack of privilege.
func isPermission(err error) bool { return errors.Is(err, os.ErrPermission) }
