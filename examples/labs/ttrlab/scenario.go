package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// scenario is how the address moves: whether its new owner announces
// itself, and what the prober's entry for it is.
type scenario struct {
	// name is what -scenarios selects.
	name string
	// title is what the table shows.
	title string
	// announce: the new owner sends a gratuitous ARP when it takes the
	// address, as Linux does when a link comes up (arp_notify).
	announce bool
	// permanent: the prober's entry is PERMANENT (pinned by hand or by a
	// provisioning tool); otherwise it is an ordinary entry.
	permanent bool
	// idle: the entry is STALE and unused when the address moves, and
	// traffic starts at t0 (a STALE entry in use); otherwise the client
	// has been connecting all along (traffic flows).
	idle bool
	// aged (with idle): the entry went STALE while the old owner was
	// still there, and the address moves a random time later; otherwise
	// the old owner went first, and the entry went STALE with nobody
	// behind it.
	aged bool
	// goal: watch must make the entry right and TCP work within
	// goalTime (median), or with speaks the new owner's connect work
	// within speaksGoal in every run. Otherwise the sweep interval is the
	// bound.
	goal bool
	// speaks: the new owner speaks first. It sends no ARP the prober can
	// see (it has a static entry for the prober, and no announcement)
	// and connects to a TCP server on the prober from t0; the prober
	// answers to the cached MAC until its entry is right. Connect times
	// are the new owner's. With idle, the entry is STALE and unused at
	// t0; with permanent, PERMANENT; with neither, REACHABLE (traffic to
	// the old owner until t0).
	speaks bool
}

// goalTime is issue 6's goal for watch.
const goalTime = time.Second

// speaksGoal is issue 12's goal for watch when the new owner speaks
// first: its connect works by its first SYN retransmission, in every run.
const speaksGoal = 1500 * time.Millisecond

var scenarios = []scenario{
	{name: "announced", title: "announced, ordinary entry", announce: true, goal: true},
	{name: "announced-permanent", title: "announced, PERMANENT entry", announce: true, permanent: true, goal: true},
	{name: "silent", title: "silent, STALE entry in use (owner gone while idle)", idle: true, goal: true},
	{name: "silent-aged", title: "silent, STALE entry in use (went STALE while its owner lived)", idle: true, aged: true, goal: true},
	{name: "silent-permanent", title: "silent, PERMANENT entry", permanent: true},
	// Not one of issue 6's goal cases, measured so that the table says
	// what watch does not do: traffic has been flowing, so the entry is
	// REACHABLE, and the kernel reports nothing until its reachable time
	// runs out and the entry enters DELAY.
	{name: "silent-reachable", title: "silent, REACHABLE entry (not a goal case)"},
	// Issue 12's: the new owner's first frame, a TCP SYN to the prober,
	// is all there is to see.
	{name: "speaks-stale", title: "new owner speaks first, STALE entry", idle: true, speaks: true, goal: true},
	{name: "speaks-reachable", title: "new owner speaks first, REACHABLE entry", speaks: true, goal: true},
	{name: "speaks-permanent", title: "new owner speaks first, PERMANENT entry", permanent: true, speaks: true, goal: true},
}

// maxReachable is the longest the kernel keeps an entry REACHABLE without
// a confirmation: 1.5 × base_reachable_time (30 s by default).
const maxReachable = 45 * time.Second

// bound returns, for a scenario without a goal, the longest watch may
// take to find a move and what sets that bound: the sweep for a PERMANENT
// entry (which never changes state), the kernel's reachable time or the
// sweep, whichever ends first, for a REACHABLE one.
func (c *config) bound(sc scenario) (time.Duration, string) {
	if sc.permanent {
		return c.watchInterval(), fmt.Sprintf("--interval (%s)", c.watchInterval())
	}
	return min(maxReachable, c.watchInterval()), fmt.Sprintf("the kernel's reachable time (15–45 s) or --interval (%s)", c.watchInterval())
}

// method is what looks after the prober's cache.
type method string

const (
	methodKernel method = "kernel" // nothing but the kernel
	methodCron   method = "cron"   // `arpcheck repair` every cron period
	methodWatch  method = "watch"  // `arpcheck watch --repair`
)

var methods = []method{methodKernel, methodCron, methodWatch}

// row is one row of the table: a scenario under a method.
type row struct {
	sc scenario
	m  method
}

func (r row) String() string { return r.sc.name + "/" + string(r.m) }

// slow reports whether the row's runs take up to a minute or more, so
// they may run several at once: their figures are seconds, not
// milliseconds. The other rows (watch, with a goal) run one at a time.
func (r row) slow() bool { return r.m != methodWatch || !r.sc.goal }

// repairArgs are the flags of `arpcheck repair` and `watch` for the row's
// entry.
func (r row) repairArgs() []string {
	if r.sc.permanent {
		return []string{"--include-permanent"}
	}
	return nil
}

// selectRows returns the rows of the scenarios and methods named in the
// comma-separated lists ("all" or "": every one), in the table's order.
func selectRows(scenarioList, methodList string) ([]row, error) {
	pick := func(list string, names []string) ([]string, error) {
		if list == "" || list == "all" {
			return names, nil
		}
		var out []string
		for _, n := range strings.Split(list, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(names, n) {
				return nil, fmt.Errorf("unknown %q; known: %s", n, strings.Join(names, ", "))
			}
			out = append(out, n)
		}
		return out, nil
	}
	var scNames, mNames []string
	for _, s := range scenarios {
		scNames = append(scNames, s.name)
	}
	for _, m := range methods {
		mNames = append(mNames, string(m))
	}
	scs, err := pick(scenarioList, scNames)
	if err != nil {
		return nil, fmt.Errorf("-scenarios: %w", err)
	}
	ms, err := pick(methodList, mNames)
	if err != nil {
		return nil, fmt.Errorf("-methods: %w", err)
	}
	var rows []row
	for _, s := range scenarios {
		for _, m := range methods {
			if slices.Contains(scs, s.name) && slices.Contains(ms, string(m)) {
				rows = append(rows, row{s, m})
			}
		}
	}
	return rows, nil
}
