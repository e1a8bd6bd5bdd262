package watch

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/internal/fake"
)

// wT0 is the start of the scheduler tests' clock; macA and macB are
// classify_test.go's.
var wT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func wAt(ms int) time.Time { return wT0.Add(time.Duration(ms) * time.Millisecond) }

func wTrig(ip string, mac net.HardwareAddr, c Cause, ms int) Trigger {
	return Trigger{IP: netip.MustParseAddr(ip), MAC: mac, Cause: c, At: wAt(ms)}
}

// wShow prints triggers as "ip/cause/mac@ms", for comparisons.
func wShow(ts []Trigger) string {
	var b []string
	for _, t := range ts {
		b = append(b, fmt.Sprintf("%s/%s/%s@%d", t.IP, t.Cause, t.MAC, t.At.Sub(wT0).Milliseconds()))
	}
	return strings.Join(b, " ")
}

func TestScheduler(t *testing.T) {
	const gap, coalesce = time.Second, 20 * time.Millisecond
	type step struct {
		add      []Trigger // raised before the step
		done     string    // an address whose check ends, settling triggers for MAC A
		now      int       // ms: take at this time
		want     string    // what take returns
		wantNext int       // ms: next() after the take; -1 for zero
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{
			name: "a trigger waits for the coalescing window",
			steps: []step{
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseState, 0)}, now: 19, want: "", wantNext: 20},
				{now: 20, want: "198.18.0.2/state/02:00:00:00:00:aa@0", wantNext: -1},
			},
		},
		{
			name: "a storm goes out as one batch, ordered by address",
			steps: []step{
				{add: []Trigger{
					wTrig("198.18.0.9", macA, CauseState, 0),
					wTrig("198.18.0.3", macB, CauseMAC, 5),
					wTrig("198.18.0.3", macB, CauseWire, 7),
					wTrig("198.18.0.2", macA, CauseNew, 15),
				}, now: 20, want: "198.18.0.2/new/02:00:00:00:00:aa@15 198.18.0.3/mac/02:00:00:00:00:bb@5 " +
					"198.18.0.3/wire/02:00:00:00:00:bb@7 198.18.0.9/state/02:00:00:00:00:aa@0", wantNext: -1},
			},
		},
		{
			name: "the same address, MAC and cause merge, the earliest time stays",
			steps: []step{
				{add: []Trigger{
					wTrig("198.18.0.2", macA, CauseState, 10),
					wTrig("198.18.0.2", macA, CauseState, 3),
					wTrig("198.18.0.2", macA, CauseState, 12),
				}, now: 23, want: "198.18.0.2/state/02:00:00:00:00:aa@3", wantNext: -1},
			},
		},
		{
			name: "at most one check per address per gap",
			steps: []step{
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseState, 0)}, now: 20, want: "198.18.0.2/state/02:00:00:00:00:aa@0", wantNext: -1},
				{add: []Trigger{wTrig("198.18.0.2", macB, CauseMAC, 100)}, done: "198.18.0.2", now: 500, want: "", wantNext: 1020},
				{now: 1019, want: "", wantNext: 1020},
				{now: 1020, want: "198.18.0.2/mac/02:00:00:00:00:bb@100", wantNext: -1},
			},
		},
		{
			name: "a rate-limited address does not hold back others, nor join their batch",
			steps: []step{
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseState, 0)}, now: 20, want: "198.18.0.2/state/02:00:00:00:00:aa@0", wantNext: -1},
				{add: []Trigger{wTrig("198.18.0.2", macB, CauseMAC, 50), wTrig("198.18.0.3", macA, CauseState, 60)},
					done: "198.18.0.2", now: 80, want: "198.18.0.3/state/02:00:00:00:00:aa@60", wantNext: 1020},
			},
		},
		{
			name: "an address being checked waits, then triggers the check settled are dropped",
			steps: []step{
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseState, 0)}, now: 20, want: "198.18.0.2/state/02:00:00:00:00:aa@0", wantNext: -1},
				// Raised during the check: about MAC A (settled by it) and MAC B (not).
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseMAC, 300), wTrig("198.18.0.2", macB, CauseWire, 310)},
					now: 2000, want: "", wantNext: -1},
				{done: "198.18.0.2", now: 2000, want: "198.18.0.2/wire/02:00:00:00:00:bb@310", wantNext: -1},
			},
		},
		{
			name: "a check that settles everything leaves nothing waiting",
			steps: []step{
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseSweep, 0)}, now: 20, want: "198.18.0.2/sweep/02:00:00:00:00:aa@0", wantNext: -1},
				{add: []Trigger{wTrig("198.18.0.2", macA, CauseMAC, 30)}, done: "198.18.0.2", now: 5000, want: "", wantNext: -1},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheduler(gap, coalesce, maxPerCause)
			for i, st := range tc.steps {
				for _, tr := range st.add {
					s.add(tr)
				}
				if st.done != "" {
					s.done(netip.MustParseAddr(st.done), func(tr Trigger) bool { return tr.MAC.String() == macA.String() })
				}
				if got := wShow(s.take(wAt(st.now))); got != st.want {
					t.Errorf("step %d: take(%d ms) = %q; want %q", i, st.now, got, st.want)
				}
				next := s.next()
				want := time.Time{}
				if st.wantNext >= 0 {
					want = wAt(st.wantNext)
				}
				if !next.Equal(want) {
					t.Errorf("step %d: next() = %v; want %v", i, next.Sub(wT0), want.Sub(wT0))
				}
			}
		})
	}
}

func TestSchedulerPrune(t *testing.T) {
	s := newScheduler(time.Second, 20*time.Millisecond, maxPerCause)
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	s.add(wTrig("198.18.0.2", macA, CauseState, 0))
	s.add(wTrig("198.18.0.3", macA, CauseState, 0))
	s.take(wAt(20))
	s.done(a, func(Trigger) bool { return true })
	s.prune(wAt(1019))
	if len(s.slots) != 2 {
		t.Fatalf("%d slots after prune within the gap; want 2", len(s.slots))
	}
	s.prune(wAt(1020))
	if _, ok := s.slots[a]; ok {
		t.Error("an idle address checked a gap ago is still remembered")
	}
	if _, ok := s.slots[b]; !ok {
		t.Error("an address being checked was forgotten")
	}
	// Forgotten, a is free to be checked at once.
	s.add(wTrig("198.18.0.2", macA, CauseState, 1100))
	if got := wShow(s.take(wAt(1120))); got != "198.18.0.2/state/02:00:00:00:00:aa@1100" {
		t.Errorf("take after prune = %q", got)
	}
}

// A flood of frames claiming addresses with ever new MACs, while the
// addresses are being checked, must not grow the scheduler's state:
// each address keeps at most perCause triggers per cause, the earliest
// time of those merged stays, and the count of pending triggers agrees.
func TestSchedulerBoundedUnderFlood(t *testing.T) {
	const addrs, macsEach = 256, 1000
	s := newScheduler(time.Second, 20*time.Millisecond, maxPerCause)
	ip := func(i int) string { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).String() }
	for i := range addrs {
		s.add(wTrig(ip(i), macA, CauseSweep, 0))
	}
	if got := len(s.take(wAt(20))); got != addrs {
		t.Fatalf("first take: %d triggers; want %d", got, addrs)
	}
	for m := range macsEach {
		mac := net.HardwareAddr{0x02, 0xee, 0, 0, byte(m >> 8), byte(m)}
		for i := range addrs {
			s.add(wTrig(ip(i), mac, CauseWire, 30+m))
			s.add(wTrig(ip(i), mac, CauseMAC, 30+m))
		}
	}
	want := addrs * 2 * maxPerCause
	if s.npending != want {
		t.Errorf("pending triggers after %d MACs per address: %d; want %d (%d per cause per address)",
			macsEach, s.npending, want, maxPerCause)
	}
	if len(s.slots) != addrs {
		t.Errorf("slots: %d; want %d", len(s.slots), addrs)
	}
	for i := range addrs {
		s.done(netip.MustParseAddr(ip(i)), func(Trigger) bool { return false })
	}
	got := s.take(wAt(2000))
	if len(got) != want || s.npending != 0 {
		t.Errorf("take after the checks: %d triggers, %d left pending; want %d and 0", len(got), s.npending, want)
	}
	for _, tr := range got {
		if !tr.At.Before(wAt(30 + maxPerCause)) {
			t.Errorf("trigger %s/%s at %v; want the earliest times kept (before %d ms)", tr.IP, tr.Cause, tr.At.Sub(wT0), 30+maxPerCause)
			break
		}
	}
}

// A check's end forgets the addresses that were checked a gap ago or
// more and wait for nothing, and keeps those checked since: the
// scheduler does not keep a slot for every address it ever checked.
func TestWatchFinishPrunes(t *testing.T) {
	tbl := fake.OneLAN()
	l := newTestLoop(t, tbl, tbl)
	now := time.Now()
	old, recent := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	for _, c := range []struct {
		ip netip.Addr
		at time.Time
	}{{old, now.Add(-2 * Gap)}, {recent, now}} {
		l.sched.add(Trigger{IP: c.ip, Cause: CauseSweep, At: c.at})
		if ts := l.sched.take(c.at.Add(coalesceWait)); len(ts) != 1 {
			t.Fatalf("take: %v; want the trigger for %s", ts, c.ip)
		}
		l.sched.done(c.ip, func(Trigger) bool { return true })
	}
	l.batches = 1
	l.finish(batchResult{report: &arpprobe.Report{}})
	if _, ok := l.sched.slots[old]; ok {
		t.Errorf("%s, checked %v ago, still has a slot", old, 2*Gap)
	}
	if _, ok := l.sched.slots[recent]; !ok {
		t.Errorf("%s, checked just now, lost its slot (it may not be checked again within %v)", recent, Gap)
	}
}
