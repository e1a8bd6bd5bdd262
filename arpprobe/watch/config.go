package watch

import (
	"log/slog"
	"net/netip"
	"time"

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
	// to one attempt, unless Config.Check.Probe.Timeout says otherwise:
	// far less than [arpprobe.DefaultTimeout], because an entry under
	// suspicion is failing traffic meanwhile, and a stale entry takes
	// two silent attempts to find: with 60 ms, an entry whose first use showed it wrong is
	// repaired about 0.16 s after that use (ttrlab's silent rows). A host
	// on the LAN answers ARP from its kernel, within a millisecond even
	// when loaded; a reply the prober's kernel received in time counts,
	// however late the prober reads it. Links slower than that (an
	// overlay stretched between sites) want a longer
	// Config.Check.Probe.Timeout (watch --timeout).
	DefaultTimeout = 60 * time.Millisecond
)

const (
	// coalesceWait is how long a trigger waits for others, so that the
	// triggers of an event storm go out as one check.
	coalesceWait = 20 * time.Millisecond
	// maxChecks is the most checks a Watcher runs at once.
	maxChecks = 4
	// sweepChunk is the most addresses a sweep hands the scheduler at
	// once, and maxSweepChecks the most checks holding them that run at
	// once: a sweep of a large table is a series of checks of bounded
	// size, not one check of every entry, so that what a check holds
	// (probes, replies, the report) does not grow with the table, and
	// the checks that events ask for meanwhile find a free place.
	sweepChunk     = 512
	maxSweepChecks = 2
	// sightingQueue is how many ARP sightings the readers may queue.
	sightingQueue = 1024
	// maxPerCause is the most triggers of one cause, each with its
	// own MAC, that wait for one address; further ones merge into the
	// earliest (see scheduler.add), so that a flood of frames claiming
	// an address with ever new MACs costs no more memory.
	maxPerCause = 4
	// resubscribeMax bounds the wait between attempts to subscribe to
	// neighbour events again.
	resubscribeMax = 30 * time.Second
)

// Config configures a Watcher. Table and Topology are required;
// [arpprobe.Kernel] is both, and [NeighborMonitor] and [NeighborTracer]
// are the Events and Trace of the running kernel.
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
	// [arpprobe.ListenConfig]{Requests: true}.Listen: the sockets receive other
	// hosts' requests too, which the Watcher needs to see announcements.
	// A Tap is called as well as the Watcher's own.
	Prober arpprobe.ProberConfig
	// Check is what each check does: the interface, how peers are asked
	// and, with Repair set, the repair policy, exactly as for
	// [arpprobe.Checker.Check], except that a zero Probe.Timeout means
	// DefaultTimeout.
	Check arpprobe.Options
	// Peers, if set, limits the Watcher to these addresses, which are
	// swept whether or not they have an entry; nil watches every IPv4
	// entry of the table (as [arpprobe.PeersFromNeighbors] chooses them). SetPeers
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
	// Err is the error of [arpprobe.Checker.Check], if any.
	Err error
}
