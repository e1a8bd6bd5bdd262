package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/internal/fake"
)

func TestEventCause(t *testing.T) {
	tests := []struct {
		name     string
		old, cur *arpprobe.Neighbor
		want     Cause // "" for no check
	}{
		{"entered STALE: idle, left alone", entry(macA, arpprobe.StateReachable), entry(macA, arpprobe.StateStale), ""},
		{"entered DELAY", entry(macA, arpprobe.StateStale), entry(macA, arpprobe.StateDelay), CauseState},
		{"entered PROBE", entry(macA, arpprobe.StateDelay), entry(macA, arpprobe.StateProbe), CauseState},
		{"changed MAC", entry(macA, arpprobe.StateReachable), entry(macB, arpprobe.StateReachable), CauseMAC},
		{"changed MAC and state", entry(macA, arpprobe.StateReachable), entry(macB, arpprobe.StateStale), CauseMAC},
		{"PERMANENT entry changed MAC", entry(macA, arpprobe.StatePermanent), entry(macB, arpprobe.StatePermanent), CauseMAC},
		{"appeared", nil, entry(macA, arpprobe.StateStale), CauseNew},
		{"appeared PERMANENT", nil, entry(macA, arpprobe.StatePermanent), CauseNew},
		{"resolved from INCOMPLETE", entry(nil, arpprobe.StateIncomplete), entry(macA, arpprobe.StateReachable), CauseNew},
		{"resolved again after FAILED", entry(macA, arpprobe.StateFailed), entry(macA, arpprobe.StateReachable), CauseNew},
		{"confirmed: REACHABLE again", entry(macA, arpprobe.StateReachable), entry(macA, arpprobe.StateReachable), ""},
		{"STALE to REACHABLE", entry(macA, arpprobe.StateStale), entry(macA, arpprobe.StateReachable), ""},
		{"still STALE", entry(macA, arpprobe.StateStale), entry(macA, arpprobe.StateStale), ""},
		{"INCOMPLETE: the kernel is asking", nil, entry(nil, arpprobe.StateIncomplete), ""},
		{"FAILED", entry(macA, arpprobe.StateProbe), entry(macA, arpprobe.StateFailed), ""},
		{"NOARP", nil, entry(macA, arpprobe.StateNoARP), ""},
		{"gone", entry(macA, arpprobe.StateStale), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := eventCause(tt.old, tt.cur)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("eventCause(%v, %v) = %q, %v; want %q", tt.old, tt.cur, got, ok, tt.want)
			}
		})
	}
}

// watchEvents is a NeighborEventSource the test feeds.
type watchEvents struct {
	mu       sync.Mutex
	subs     []*watchSub
	failNext int // subscriptions to refuse
	failed   int
}

type watchSub struct {
	ch     chan NeighborEvent
	closed bool
}

func newWatchEvents() *watchEvents { return &watchEvents{} }

func (f *watchEvents) SubscribeNeighbors(ctx context.Context) (<-chan NeighborEvent, error) {
	s := &watchSub{ch: make(chan NeighborEvent, 64)}
	f.mu.Lock()
	if f.failNext > 0 {
		f.failNext--
		f.failed++
		f.mu.Unlock()
		return nil, errors.New("fake: cannot subscribe")
	}
	f.subs = append(f.subs, s)
	f.mu.Unlock()
	context.AfterFunc(ctx, func() { f.end(s, nil) })
	return s.ch, nil
}

func (f *watchEvents) current() *watchSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs[len(f.subs)-1]
}

// send delivers an event on the current subscription.
func (f *watchEvents) send(ev NeighborEvent) {
	s := f.current()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !s.closed {
		s.ch <- ev
	}
}

// end ends a subscription, with a last event carrying err if set.
func (f *watchEvents) end(s *watchSub, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.closed {
		return
	}
	if err != nil {
		s.ch <- NeighborEvent{Err: err}
	}
	s.closed = true
	close(s.ch)
}

// watchRig runs a Watcher on a fake LAN and table (interface 2,
// 198.18.0.1/24) with fake events, and collects its checks.
type watchRig struct {
	t      *testing.T
	tbl    *fake.Table
	lan    *fake.LAN
	events *watchEvents
	w      *Watcher
	checks chan Check
	cancel context.CancelFunc
	done   chan error
}

// newWatchRig returns a rig with entries in the fake table; the test
// adds hosts, then calls start.
func newWatchRig(t *testing.T, entries ...arpprobe.Neighbor) *watchRig {
	return &watchRig{t: t, tbl: fake.OneLAN(entries...), lan: &fake.LAN{}, events: newWatchEvents(),
		checks: make(chan Check, 256), done: make(chan error, 1)}
}

// start runs a Watcher with cfg, whose Table, Topology, Events (unless
// noEvents), Prober, probe options and OnCheck it sets, and waits for
// the first sweep to end.
func (r *watchRig) start(cfg Config, noEvents bool) *watchRig {
	t := r.t
	t.Helper()
	cfg.Table, cfg.Topology = r.tbl, r.tbl
	if !noEvents {
		// The kernel tells of its writes, the repairs' included.
		cfg.Table = watchKernel{r.tbl, r.events}
		cfg.Events = r.events
	}
	cfg.Prober = r.lan.Config()
	cfg.Check.Probe = fakeOpts(arpprobe.BroadcastAuto)
	cfg.OnCheck = func(c Check) {
		select {
		case r.checks <- c:
		default:
			t.Error("too many checks")
		}
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	r.waitCheck("the first sweep", func(c Check) bool { return watchHasCause(c, CauseSweep) })
	return r
}

// watchKernel is a fake table that raises an event for each write, as
// the kernel does.
type watchKernel struct {
	*fake.Table
	events *watchEvents
}

func (k watchKernel) SetNeighbor(ctx context.Context, n arpprobe.Neighbor) error {
	if err := k.Table.SetNeighbor(ctx, n); err != nil {
		return err
	}
	n.Interface = ""
	k.events.send(NeighborEvent{Neighbor: n})
	// As with the kernel, the event is read before the write's caller
	// goes on: it reaches the watcher while the check runs.
	s := k.events.current()
	for deadline := time.Now().Add(5 * time.Second); len(s.ch) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return nil
}

// stop cancels Run and waits for it.
func (r *watchRig) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run returned %v after cancel; want nil", err)
		}
		r.done <- nil // for a second stop
	case <-time.After(10 * time.Second):
		r.t.Fatal("Run did not return within 10 s of cancel")
	}
}

// waitCheck returns the first check that satisfies ok, and every check
// received before it; it fails the test after 10 s.
func (r *watchRig) waitCheck(what string, ok func(Check) bool) (Check, []Check) {
	r.t.Helper()
	var before []Check
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-r.checks:
			if ok(c) {
				return c, before
			}
			before = append(before, c)
		case <-deadline:
			r.t.Fatalf("no check for %s within 10 s; saw %s", what, watchChecks(before))
		}
	}
}

func watchHasCause(c Check, cause Cause) bool {
	return slices.ContainsFunc(c.Triggers, func(t Trigger) bool { return t.Cause == cause })
}

func watchChecked(c Check, ip string) bool {
	return slices.ContainsFunc(c.Triggers, func(t Trigger) bool { return t.IP.String() == ip })
}

// watchPeer returns the report's peer for ip.
func watchPeer(t *testing.T, c Check, ip string) *arpprobe.Peer {
	t.Helper()
	if c.Report == nil {
		t.Fatalf("check without a report: %v", c.Err)
	}
	for i := range c.Report.Peers {
		if c.Report.Peers[i].IP.String() == ip {
			return &c.Report.Peers[i]
		}
	}
	t.Fatalf("no peer %s in the check of %s", ip, watchChecks([]Check{c}))
	return nil
}

func watchChecks(cs []Check) string {
	var b []string
	for _, c := range cs {
		var ts []string
		for _, t := range c.Triggers {
			ts = append(ts, t.IP.String()+"/"+string(t.Cause))
		}
		b = append(b, "["+strings.Join(ts, " ")+"]")
	}
	return strings.Join(b, " ")
}

// setEntry changes the fake kernel's entry for ip (nil mac and zero
// state delete it) and returns it as an event would carry it.
func (r *watchRig) setEntry(ip string, mac net.HardwareAddr, s arpprobe.State) NeighborEvent {
	n := arpprobe.Neighbor{IP: netip.MustParseAddr(ip), Ifindex: 2, Interface: "fake2", MAC: mac, State: s}
	if s == arpprobe.StateNone {
		r.tbl.Delete(n.IP)
		return NeighborEvent{Neighbor: n, Deleted: true}
	}
	r.tbl.Set(n)
	n.Interface = "" // events do not name the interface
	return NeighborEvent{Neighbor: n}
}

// setHost makes ip answer from mac alone (nil: nobody answers).
func (r *watchRig) setHost(ip string, mac net.HardwareAddr) {
	r.lan.Remove(ip)
	if mac != nil {
		r.lan.Add(ip, mac, 0)
	}
}

func (r *watchRig) writes() []string {
	return r.tbl.Writes()
}

func watchNeigh(ip string, mac net.HardwareAddr, s arpprobe.State) arpprobe.Neighbor {
	return arpprobe.Neighbor{IP: netip.MustParseAddr(ip), MAC: mac, State: s}
}

// Event-driven detection and repair: the host behind a cached address
// changed MAC; when its entry is used (DELAY) the watcher checks it at
// once and repairs it.
func TestWatchEventRepair(t *testing.T) {
	t.Parallel()
	const moved, marker = "198.18.0.2", "198.18.0.3"
	r := newWatchRig(t, watchNeigh(moved, macA, arpprobe.StateReachable), watchNeigh(marker, macA, arpprobe.StateReachable))
	r.setHost(moved, macA)
	r.setHost(marker, macA)
	r.start(Config{Check: arpprobe.Options{Repair: &arpprobe.RepairPolicy{}}, Poll: -1}, false)
	r.setHost(moved, macB)
	r.events.send(r.setEntry(moved, macA, arpprobe.StateDelay))
	r.events.send(r.setEntry(marker, macA, arpprobe.StateDelay))
	c, _ := r.waitCheck("the entry in use", func(c Check) bool { return watchChecked(c, moved) })
	p := watchPeer(t, c, moved)
	if p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced || p.Owner.String() != macB.String() || !watchHasCause(c, CauseState) {
		t.Errorf("watchChecked %s for %s: verdict %s, action %s, owner %s; want state, stale, replaced, %s",
			p.IP, watchChecks([]Check{c}), p.Verdict, p.Action, p.Owner, macB)
	}
	if !watchChecked(c, marker) {
		t.Fatalf("the two entries in use were not watchChecked together: %s", watchChecks([]Check{c}))
	}
	want := "set " + moved + " " + macB.String() + " REACHABLE"
	if w := r.writes(); !slices.Equal(w, []string{want}) {
		t.Errorf("writes %q; want [%q]", w, want)
	}
	// The repair's write came back as an event (a new MAC) during the
	// check, which settled it. The marker, watchChecked at the same time, is
	// free to be watchChecked again when the repaired entry would be: the
	// marker's next check must come alone.
	r.events.send(r.setEntry(marker, macA, arpprobe.StateProbe))
	c, before := r.waitCheck("the marker", func(c Check) bool { return watchChecked(c, marker) })
	if all := append(before, c); len(all) != 1 || watchChecked(c, moved) {
		t.Errorf("checks after the repair: %s; want only the marker's", watchChecks(all))
	}
	st := r.w.Stats()
	// Both entries are right now: the repaired one counts as ok.
	if st.Repairs[arpprobe.ActionReplaced] != 1 || st.Checks[CauseState] != 3 || st.Entries[arpprobe.VerdictOK] != 2 || len(st.Entries) != 1 {
		t.Errorf("stats: repairs %v, checks %v, entries %v; want 1 replaced, 3 by state, 2 ok", st.Repairs, st.Checks, st.Entries)
	}
}

// Which kernel events make the watcher check an entry: each case sends
// its events, then a marker event for another address; every check up
// to the marker's must be exactly the ones the case wants.
func TestWatchEvents(t *testing.T) {
	t.Parallel()
	const ip, marker = "198.18.0.2", "198.18.0.9"
	tests := []struct {
		name   string
		before arpprobe.Neighbor // the entry when the watcher starts (IP ip)
		after  arpprobe.Neighbor // the event's entry; State 0: deleted
		cfg    Config
		want   Cause // "": no check
	}{
		{name: "entered STALE: idle, left alone", before: watchNeigh(ip, macA, arpprobe.StateReachable), after: watchNeigh(ip, macA, arpprobe.StateStale)},
		{name: "entered DELAY", before: watchNeigh(ip, macA, arpprobe.StateStale), after: watchNeigh(ip, macA, arpprobe.StateDelay), want: CauseState},
		{name: "entered PROBE", before: watchNeigh(ip, macA, arpprobe.StateDelay), after: watchNeigh(ip, macA, arpprobe.StateProbe), want: CauseState},
		{name: "changed MAC", before: watchNeigh(ip, macA, arpprobe.StateReachable), after: watchNeigh(ip, macB, arpprobe.StateReachable), want: CauseMAC},
		{name: "appeared", after: watchNeigh(ip, macA, arpprobe.StateStale), want: CauseNew},
		{name: "confirmed", before: watchNeigh(ip, macA, arpprobe.StateStale), after: watchNeigh(ip, macA, arpprobe.StateReachable)},
		{name: "failed", before: watchNeigh(ip, macA, arpprobe.StateProbe), after: watchNeigh(ip, macA, arpprobe.StateFailed)},
		{name: "incomplete", after: watchNeigh(ip, nil, arpprobe.StateIncomplete)},
		{name: "deleted", before: watchNeigh(ip, macA, arpprobe.StateStale), after: watchNeigh(ip, nil, arpprobe.StateNone)},
		{name: "outside the peer list", before: watchNeigh(ip, macA, arpprobe.StateReachable), after: watchNeigh(ip, macA, arpprobe.StateStale),
			cfg: Config{Peers: []netip.Addr{netip.MustParseAddr(marker)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var entries []arpprobe.Neighbor
			if tt.before.IP.IsValid() {
				entries = append(entries, tt.before)
			}
			entries = append(entries, watchNeigh(marker, macA, arpprobe.StateReachable))
			cfg := tt.cfg
			cfg.Poll = -1
			r := newWatchRig(t, entries...).start(cfg, false)
			r.setHost(ip, tt.after.MAC)
			r.events.send(r.setEntry(ip, tt.after.MAC, tt.after.State))
			r.setHost(marker, macA)
			r.events.send(r.setEntry(marker, macA, arpprobe.StateDelay))
			c, before := r.waitCheck("the marker", func(c Check) bool { return watchChecked(c, marker) })
			var got []Trigger
			for _, c := range append(before, c) {
				for _, t := range c.Triggers {
					if t.IP.String() == ip {
						got = append(got, t)
					}
				}
			}
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("watchChecked %s for %v; want no check", ip, got)
			case tt.want != "" && (len(got) != 1 || got[0].Cause != tt.want):
				t.Errorf("checks of %s: %v; want one for cause %s", ip, got, tt.want)
			}
		})
	}
}

// Passive listening: an ARP request or announcement from another MAC
// than a PERMANENT entry's, which raises no kernel event, makes the
// watcher check the entry and, with IncludePermanent, repair it.
func TestWatchWire(t *testing.T) {
	t.Parallel()
	self, zero := net.HardwareAddr{2, 0, 0, 0, 0xff, 2}, net.HardwareAddr{0, 0, 0, 0, 0, 0}
	addr := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name  string
		ip    string
		frame func(ip netip.Addr) []byte // from macB, the new owner
	}{
		{"gratuitous request", "198.18.0.2", func(ip netip.Addr) []byte {
			return arpFrame(arp.OperationRequest, macB, ip, zero, ip)
		}},
		{"gratuitous reply", "198.18.0.3", func(ip netip.Addr) []byte {
			return arpFrame(arp.OperationReply, macB, ip, ethernet.Broadcast, ip)
		}},
		{"request for another host", "198.18.0.4", func(ip netip.Addr) []byte {
			return arpFrame(arp.OperationRequest, macB, ip, zero, addr("198.18.0.1"))
		}},
	}
	var entries []arpprobe.Neighbor
	for _, tt := range tests {
		entries = append(entries, watchNeigh(tt.ip, macA, arpprobe.StatePermanent))
	}
	r := newWatchRig(t, entries...)
	for _, tt := range tests {
		r.setHost(tt.ip, macA) // the old owner, until the first sweep
	}
	r.start(Config{Check: arpprobe.Options{Repair: &arpprobe.RepairPolicy{IncludePermanent: true}}, Poll: -1}, false)
	for _, tt := range tests {
		r.setHost(tt.ip, macB)
	}
	// Frames that must not count: the cached owner asking, an RFC 5227
	// probe, a reply to someone's request.
	ip := addr(tests[0].ip)
	r.lan.Inject(arpFrame(arp.OperationRequest, macA, ip, zero, addr("198.18.0.1")))
	r.lan.Inject(arpFrame(arp.OperationRequest, macB, netip.IPv4Unspecified(), zero, ip))
	r.lan.Inject(arpFrame(arp.OperationReply, macB, ip, self, addr("198.18.0.1")))
	for _, tt := range tests {
		r.lan.Inject(tt.frame(addr(tt.ip)))
	}
	seen := map[string]*arpprobe.Peer{}
	for len(seen) < len(tests) {
		c, _ := r.waitCheck("the announcements", func(c Check) bool { return watchHasCause(c, CauseWire) })
		for _, tr := range c.Triggers {
			if tr.Cause == CauseWire {
				seen[tr.IP.String()] = watchPeer(t, c, tr.IP.String())
			}
		}
	}
	for _, tt := range tests {
		p := seen[tt.ip]
		if p == nil {
			t.Errorf("%s: no check of %s", tt.name, tt.ip)
			continue
		}
		if p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced || p.After == nil ||
			p.After.MAC.String() != macB.String() || p.After.State != arpprobe.StatePermanent {
			t.Errorf("%s: %s %s %s, after %v; want stale, replaced, PERMANENT %s", tt.name, p.IP, p.Verdict, p.Action, p.After, macB)
		}
	}
	if st := r.w.Stats(); st.Sightings != uint64(len(tests)) {
		t.Errorf("%d sightings; want %d (the frames that must not count were counted)", st.Sightings, len(tests))
	}
}

// With no events, the table is read every Poll: an entry in use goes
// from STALE to DELAY without any event, and the read catches it.
func TestWatchPollSeesDelay(t *testing.T) {
	t.Parallel()
	r := newWatchRig(t, watchNeigh("198.18.0.2", macA, arpprobe.StateStale))
	r.setHost("198.18.0.2", macA)
	r.start(Config{Check: arpprobe.Options{Repair: &arpprobe.RepairPolicy{}}, Poll: 10 * time.Millisecond}, true)
	r.setHost("198.18.0.2", macB)
	r.setEntry("198.18.0.2", macA, arpprobe.StateDelay)
	c, _ := r.waitCheck("the DELAY entry", func(c Check) bool { return watchHasCause(c, CauseState) })
	if p := watchPeer(t, c, "198.18.0.2"); p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced {
		t.Errorf("verdict %s, action %s; want stale, replaced", p.Verdict, p.Action)
	}
}

// A sweep leaves alone an idle STALE entry that a check found right: the
// owner's reply would make the kernel mark it REACHABLE, hiding its next
// use. It checks every other entry, a STALE one never checked or last
// found wrong, and the idle entry again once it is used (DELAY).
func TestWatchSweepSkipsIdleStale(t *testing.T) {
	t.Parallel()
	const idle, dead, reachable, pinned = "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"
	r := newWatchRig(t, watchNeigh(idle, macA, arpprobe.StateStale), watchNeigh(dead, macA, arpprobe.StateStale),
		watchNeigh(reachable, macA, arpprobe.StateReachable), watchNeigh(pinned, macA, arpprobe.StatePermanent))
	for _, ip := range []string{idle, reachable, pinned} {
		r.setHost(ip, macA)
	}
	// The first sweep checks every entry; each keeps its state (the fake
	// kernel does not take replies).
	r.start(Config{Interval: 50 * time.Millisecond, Poll: -1}, false)
	for range 2 {
		c, _ := r.waitCheck("a later sweep", func(c Check) bool { return watchHasCause(c, CauseSweep) })
		var got []string
		for _, tr := range c.Triggers {
			got = append(got, tr.IP.String())
		}
		if want := []string{dead, reachable, pinned}; !slices.Equal(got, want) {
			t.Errorf("sweep checked %v; want %v (not the idle STALE entry found right)", got, want)
		}
	}
	r.events.send(r.setEntry(idle, macA, arpprobe.StateDelay))
	r.waitCheck("the idle entry once used", func(c Check) bool { return watchChecked(c, idle) && watchHasCause(c, CauseState) })
}

// When events are lost (ENOBUFS) the watcher subscribes again, trying
// until it can, and reads the table, finding what changed meanwhile.
func TestWatchEventsLost(t *testing.T) {
	t.Parallel()
	r := newWatchRig(t, watchNeigh("198.18.0.2", macA, arpprobe.StateReachable)).start(Config{Poll: -1}, false)
	r.setHost("198.18.0.2", macB)
	r.setEntry("198.18.0.2", macB, arpprobe.StateStale) // no event: it was lost
	r.events.mu.Lock()
	r.events.failNext = 1
	r.events.mu.Unlock()
	r.events.end(r.events.current(), fmt.Errorf("fake: %w", ErrEventsLost))
	c, _ := r.waitCheck("the changed entry", func(c Check) bool { return watchChecked(c, "198.18.0.2") })
	if !watchHasCause(c, CauseMAC) {
		t.Errorf("check %s; want cause mac", watchChecks([]Check{c}))
	}
	r.events.mu.Lock()
	subs, failed := len(r.events.subs), r.events.failed
	r.events.mu.Unlock()
	if subs != 2 || failed != 1 {
		t.Errorf("%d subscriptions, %d refused; want 2, 1", subs, failed)
	}
	if st := r.w.Stats(); st.Resyncs != 1 {
		t.Errorf("%d resyncs; want 1", st.Resyncs)
	}
}

// SetPeers (what SIGHUP does) replaces the list and sweeps it at once.
func TestWatchSetPeers(t *testing.T) {
	t.Parallel()
	two, three, seven := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.7")
	r := newWatchRig(t, watchNeigh("198.18.0.2", macA, arpprobe.StateReachable), watchNeigh("198.18.0.3", macA, arpprobe.StateReachable)).
		start(Config{Peers: []netip.Addr{two}, Poll: -1}, false)
	r.setHost("198.18.0.7", macB) // no entry: uncached
	r.w.SetPeers([]netip.Addr{three, seven})
	c, _ := r.waitCheck("the new list", func(c Check) bool { return watchChecked(c, "198.18.0.7") })
	var got []string
	for _, tr := range c.Triggers {
		got = append(got, tr.IP.String()+"/"+string(tr.Cause))
	}
	if want := []string{"198.18.0.3/sweep", "198.18.0.7/sweep"}; !slices.Equal(got, want) {
		t.Errorf("check after SetPeers: %v; want %v", got, want)
	}
	if p := watchPeer(t, c, "198.18.0.7"); p.Verdict != arpprobe.VerdictUncached {
		t.Errorf("198.18.0.7: %s; want uncached", p.Verdict)
	}
	// .2 left the list: its events are ignored, and it no longer counts.
	r.events.send(r.setEntry("198.18.0.2", macA, arpprobe.StateDelay))
	r.events.send(r.setEntry("198.18.0.3", macA, arpprobe.StateDelay))
	c, before := r.waitCheck("the marker", func(c Check) bool { return watchChecked(c, "198.18.0.3") })
	for _, c := range append(before, c) {
		if watchChecked(c, "198.18.0.2") {
			t.Errorf("198.18.0.2 watchChecked after it left the list: %s", watchChecks([]Check{c}))
		}
	}
	if st := r.w.Stats(); st.Entries[arpprobe.VerdictUncached] != 1 || st.Entries[arpprobe.VerdictDead]+st.Entries[arpprobe.VerdictOK] != 1 {
		t.Errorf("entries by verdict %v; want 198.18.0.3 and 198.18.0.7 only", st.Entries)
	}
}

// Cancelling Run ends a check under way without waiting for its
// timeout, closes the sockets and the subscription, and returns nil.
func TestWatchShutdown(t *testing.T) {
	t.Parallel()
	lan := &fake.LAN{}
	tbl := fake.OneLAN(watchNeigh("198.18.0.2", macA, arpprobe.StateReachable)) // nobody answers
	events := newWatchEvents()
	started := make(chan struct{}, 1)
	lan.OnSend = func(arpprobe.Frame) {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	cfg := Config{Table: tbl, Topology: tbl, Events: events, Prober: lan.Config(), Poll: -1}
	cfg.Check.Probe = arpprobe.ProbeOptions{Timeout: time.Minute}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first sweep sent nothing within 10 s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel, with a probe waiting a minute")
	}
	if opened, open := lan.Sockets(); opened == 0 {
		t.Fatal("no socket was opened")
	} else if open > 0 {
		t.Errorf("%d of %d sockets still open after Run returned", open, opened)
	}
	if s := events.current(); !s.closed {
		t.Error("the event subscription is still open after Run returned")
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

// A check that fails for lack of privilege stops the watcher with that
// error.
func TestWatchPermissionStops(t *testing.T) {
	t.Parallel()
	lan := &fake.LAN{}
	tbl := fake.OneLAN(watchNeigh("198.18.0.2", macA, arpprobe.StateReachable))
	pc := lan.Config()
	pc.Listen = func(*net.Interface) (arpprobe.FrameConn, error) { return nil, errEPERM }
	w, err := New(Config{Table: tbl, Topology: tbl, Prober: pc, Poll: -1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, errEPERM.Err) {
			t.Errorf("Run = %v; want a permission error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop within 10 s without the privilege to probe")
	}
}

// An action that changes nothing (a refusal, a dry run's would-replace)
// is counted once for an entry, not again at every check that finds the
// entry as it was: a PERMANENT entry whose address moved, left alone
// without IncludePermanent, is one refusal however often it is swept.
// It is counted again once the entry or its owner changes.
func TestWatchCountsRefusalOnce(t *testing.T) {
	t.Parallel()
	const pinned, moved = "198.18.0.2", "198.18.0.3"
	tests := []struct {
		name   string
		policy arpprobe.RepairPolicy
		action arpprobe.Action
	}{
		{"refused", arpprobe.RepairPolicy{}, arpprobe.ActionRefused},
		{"dry run", arpprobe.RepairPolicy{DryRun: true, IncludePermanent: true}, arpprobe.ActionWouldReplace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newWatchRig(t, watchNeigh(pinned, macA, arpprobe.StatePermanent), watchNeigh(moved, macA, arpprobe.StateReachable))
			r.setHost(pinned, macB)
			r.setHost(moved, macA)
			policy := tt.policy
			r.start(Config{Check: arpprobe.Options{Repair: &policy}, Interval: 20 * time.Millisecond, Poll: -1}, false)
			// The first sweep's check found it; two more do.
			for range 2 {
				c, _ := r.waitCheck("a later sweep", func(c Check) bool { return watchChecked(c, pinned) })
				if p := watchPeer(t, c, pinned); p.Action != tt.action {
					t.Fatalf("%s: %s %s (%s); want %s", pinned, p.Verdict, p.Action, p.Reason, tt.action)
				}
			}
			if st := r.w.Stats(); st.Repairs[tt.action] != 1 {
				t.Errorf("after 3 checks that found it: %v %v; want 1 for the one entry", st.Repairs[tt.action], tt.action)
			}
			// The owner changes again: a new situation, counted again.
			r.setHost(pinned, macC)
			r.waitCheck("a sweep finding the new owner", func(c Check) bool {
				return watchChecked(c, pinned) && watchPeer(t, c, pinned).Owner.String() == macC.String()
			})
			if st := r.w.Stats(); st.Repairs[tt.action] != 2 {
				t.Errorf("after the owner changed: %v %v; want 2", st.Repairs[tt.action], tt.action)
			}
		})
	}
}

// A sweep of more addresses than sweepChunk goes out as checks of at
// most sweepChunk addresses, which check every address once; the sweep
// counts as done (Stats.LastSweep) when the last of them ends, not the
// first.
func TestWatchSweepInChunks(t *testing.T) {
	t.Parallel()
	const n = 2*sweepChunk + 100
	lan := &fake.LAN{}
	entries := make([]arpprobe.Neighbor, n)
	for i := range entries {
		ip := netip.AddrFrom4([4]byte{198, 18, byte((i + 2) >> 8), byte(i + 2)})
		mac := net.HardwareAddr{0x02, 0, 0, 1, byte(i >> 8), byte(i)}
		entries[i] = arpprobe.Neighbor{IP: ip, MAC: mac, State: arpprobe.StateReachable}
		lan.Add(ip.String(), mac, 0)
	}
	tbl := fake.Subnet(netip.MustParsePrefix("198.18.0.1/16"), entries...)
	checks := make(chan Check, n)
	var w *Watcher
	lastSweep := make(chan time.Time, n)
	cfg := Config{Table: tbl, Topology: tbl, Prober: lan.Config(), Poll: -1, Interval: time.Hour,
		OnCheck: func(c Check) {
			checks <- c
			lastSweep <- w.Stats().LastSweep
		}}
	cfg.Check.Probe = fakeOpts(arpprobe.BroadcastAuto)
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	swept := make(map[netip.Addr]int)
	var sizes []int
	deadline := time.After(30 * time.Second)
	for len(swept) < n {
		select {
		case c := <-checks:
			size := 0
			for _, tr := range c.Triggers {
				if tr.Cause == CauseSweep {
					swept[tr.IP]++
					size++
				}
			}
			sizes = append(sizes, size)
			if size > sweepChunk {
				t.Errorf("a check of %d swept addresses; want at most %d", size, sweepChunk)
			}
			if last := <-lastSweep; len(swept) < n && !last.IsZero() {
				t.Errorf("LastSweep set after %d of %d addresses were swept", len(swept), n)
			} else if len(swept) == n && last.IsZero() {
				t.Error("LastSweep not set once every address was swept")
			}
		case <-deadline:
			t.Fatalf("%d of %d addresses swept within 30 s (checks of %v)", len(swept), n, sizes)
		}
	}
	for a, k := range swept {
		if k != 1 {
			t.Errorf("%s swept %d times; want once", a, k)
		}
	}
	t.Logf("the sweep of %d addresses went out as checks of %v", n, sizes)
}
