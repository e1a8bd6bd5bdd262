package watch

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// A Watcher keeps the kernel's ARP cache right as it changes: it checks
// an entry as soon as a kernel event, a read of the table or an ARP
// frame on the wire gives reason to doubt it, and every watched address
// at each sweep. Each check is an [arpprobe.Checker.Check] of the addresses in
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
// as one check. A sweep goes out as checks of at most 512 addresses, two
// at a time, so that what a check holds does not grow with the table
// and the checks that events ask for meanwhile are not held up.
//
// Cost when all is well: the tracer's events, or else a read of the
// table per Poll (one dump, compared entry by entry with the last when
// the Table is a NeighborScanner), and a unicast request per entry each
// time it starts being used while STALE (at most about once per
// reachable time, 15 to 45 s, per entry in use) or is swept.
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

// The ARP operations (RFC 826) that arpprobe.Frame.Op holds.
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
		return nil, errors.New("watch: a Table and a Topology are required")
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
		sightings: make(chan sighting, sightingQueue),
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
		return errors.New("watch: Run called twice")
	}
	defer w.pin.Close()
	defer w.prober.Close()
	w.running.Store(true)
	defer w.running.Store(false)
	l := &loop{
		w:       w,
		sched:   newScheduler(Gap, coalesceWait, maxPerCause),
		results: make(chan batchResult, maxChecks),
	}
	defer l.closeSYNs()
	return l.run(ctx)
}

// uniq returns addrs sorted, without repeats.
func uniq(addrs []netip.Addr) []netip.Addr {
	out := slices.Clone(addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// isPermission reports whether err comes from a lack of privilege.
func isPermission(err error) bool { return errors.Is(err, os.ErrPermission) }
