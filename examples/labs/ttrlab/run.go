package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/watch"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// config is what every run shares.
type config struct {
	// arpcheck is the arpcheck binary that cron and watch run.
	arpcheck string
	// limit is how long a run waits for the entry and a connect after t0.
	limit time.Duration
	// cronPeriod is the cron's period (60 s, as every minute in cron).
	cronPeriod time.Duration
	// interval is watch's --interval; zero: watch's default.
	interval time.Duration
	// agedSpread is the spread of the time between an entry going STALE
	// and the move in the aged scenario; zero: none.
	agedSpread time.Duration
}

// watchInterval is the sweep interval watch runs with.
func (c *config) watchInterval() time.Duration {
	if c.interval > 0 {
		return c.interval
	}
	return watch.DefaultInterval
}

const (
	// flowing is how long the client connects to the old owner before t0,
	// where traffic flows; more than watch.Gap, so that a check
	// watch made before t0 does not delay one after it.
	flowing = 1200 * time.Millisecond
	// settle is how long the entry lies STALE and idle before t0 (plus a
	// random time in the aged scenario): more than watch.Gap
	// after watch's first sweep, so that it does not delay a check after
	// t0. (A watch older than the fix of idle STALE entries checks the
	// entry meanwhile, and the kernel marks it REACHABLE if the owner
	// answers.)
	settle = 1500 * time.Millisecond
	// startWithin bounds arpcheck watch's start and its first sweep.
	startWithin = 15 * time.Second
)

// sample is what one run measured. Times are from t0; a negative time
// means not within the limit.
type sample struct {
	entry   time.Duration // t1: the prober's entry holds the new owner's MAC
	connect time.Duration // t2: the first TCP connect that reached the new owner
	// fixer says what put the new MAC in the entry: "kernel", "cron", or
	// "watch" with the cause and the action.
	fixer string
	// phase is when the first cron run after t0 came (cron), how long
	// after watch's previous sweep t0 came (watch, sweep-bound
	// scenarios), or how long after settle the address moved (aged).
	phase time.Duration
	// move is how long the lab took to move the address (t0 is its end).
	move time.Duration
	// final is the entry at the end of the run: MAC and state.
	finalMAC   string
	finalState string
	// detail is the watch log or the cron runs' output, for -v.
	detail string
}

// never marks a time not reached within the limit.
const never = time.Duration(-1)

// run makes one measured run of r on a LAN of its own, and removes the
// LAN, whatever happens.
func (c *config) run(ctx context.Context, r row) (s sample, err error) {
	l, err := buildLab(ctx)
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	p := l.lan.Prober
	obs, err := observe(p, l.newMAC)
	if err != nil {
		return s, err
	}
	defer obs.close()
	if r.sc.speaks {
		if err := l.listenFirst(); err != nil {
			return s, err
		}
	}

	// The entry as the old owner left it: pinned, or learnt by the
	// kernel from a first connect (REACHABLE).
	if r.sc.permanent {
		err = p.AddNeigh(netns.LANIface, movedAddr, l.oldMAC, netlink.NUD_PERMANENT, 0)
	} else {
		err = connectOnce(ctx, p, bannerOld, 5*time.Second)
	}
	if err != nil {
		return s, fmt.Errorf("seed the entry: %w", err)
	}

	var w *watchProc
	if r.m == methodWatch {
		args := append([]string{"--repair"}, r.repairArgs()...)
		if c.interval > 0 {
			args = append(args, "--interval", c.interval.String())
		}
		if w, err = startWatch(ctx, p, c.arpcheck, args); err != nil {
			return s, err
		}
		defer func() {
			err = errors.Join(err, w.stop())
			s.detail = w.log()
		}()
		_, err := w.waitFor(ctx, startWithin, "the first sweep", func(rec logRecord) bool {
			return rec.IP == movedAddr.String() && strings.Contains(rec.Cause, string(watch.CauseSweep))
		})
		if err != nil {
			return s, err
		}
	}

	runCtx, stopRun := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() { stopRun(); bg.Wait() }()
	cl := newClient(p)
	// The prober's client; in the rows where the new owner speaks first
	// it stops at t0, so that the new owner speaks first.
	clientCtx, stopClient := context.WithCancel(runCtx)
	defer stopClient()

	if r.sc.idle {
		// The entry ages to STALE while nothing uses it (written here;
		// the kernel gets there after a reachable time without traffic,
		// with the same event). Either the old owner has gone before,
		// or it is still there and the address moves a while later.
		if !r.sc.aged {
			if err := l.unplugOld(); err != nil {
				return s, err
			}
		}
		if err := p.AddNeigh(netns.LANIface, movedAddr, l.oldMAC, netlink.NUD_STALE, 0); err != nil {
			return s, err
		}
		wait := settle
		if r.sc.aged && c.agedSpread > 0 {
			s.phase = rand.N(c.agedSpread)
			wait += s.phase
		}
		if err := sleep(ctx, wait); err != nil {
			return s, err
		}
	} else {
		bg.Go(func() { cl.run(clientCtx) })
		wait := flowing
		if w != nil && !r.sc.goal {
			// Only the sweep finds this one: come at a random moment of
			// the sweep interval.
			s.phase = rand.N(c.watchInterval())
			wait += s.phase
		}
		if err := sleep(ctx, wait); err != nil {
			return s, err
		}
		if at, _ := cl.first(bannerOld); at.IsZero() {
			return s, fmt.Errorf("no TCP connect reached the old owner in %s before t0", wait)
		}
	}

	// The move: the old owner goes (unless gone already) and the new one
	// takes the address. t0 is when both are done, the earliest moment a
	// repair can work; the client's next packet fails. (The netlink calls
	// take about a millisecond, but wait for the host-wide rtnl lock,
	// which other namespaces' teardown may hold for much longer: that is
	// the lab's time, not the method's, and is reported as move.)
	moveStart := time.Now()
	if !r.sc.idle || r.sc.aged {
		if err := l.unplugOld(); err != nil {
			return s, err
		}
	}
	if err := l.takeAddress(); err != nil {
		return s, err
	}
	t0 := time.Now()
	s.move = t0.Sub(moveStart)
	obs.start(t0)
	if r.sc.announce {
		if err := l.announce(); err != nil {
			return s, err
		}
	}
	// t2 comes from the prober's client, or from the new owner's connect.
	second := func() (time.Time, <-chan struct{}) { return cl.first(bannerNew) }
	if r.sc.speaks {
		stopClient()
		var spoke time.Time
		spoken := make(chan struct{})
		bg.Go(func() {
			spoke = l.speak(runCtx, c.limit)
			close(spoken)
		})
		second = func() (time.Time, <-chan struct{}) {
			select {
			case <-spoken:
				return spoke, nil
			default:
				return time.Time{}, spoken
			}
		}
	} else if r.sc.idle {
		bg.Go(func() { cl.run(clientCtx) })
	}
	var cronRuns []cronRun
	if r.m == methodCron {
		s.phase = rand.N(c.cronPeriod)
		first := t0.Add(s.phase)
		bg.Go(func() { cronRuns = cron(ctx, runCtx, p, c.arpcheck, r.repairArgs(), first, c.cronPeriod) })
	}

	limit := time.NewTimer(c.limit)
	defer limit.Stop()
	var t1, t2 time.Time
wait:
	for {
		var ch1, ch2 <-chan struct{}
		t1, ch1 = obs.first()
		t2, ch2 = second()
		if !t1.IsZero() && !t2.IsZero() {
			break
		}
		if r.sc.speaks && ch2 == nil && t2.IsZero() && !t1.IsZero() {
			break // the new owner gave up (its connect timed out)
		}
		select {
		case <-ch1:
		case <-ch2:
		case <-limit.C:
			break wait
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
	if w != nil && !t1.IsZero() {
		// Let watch finish and log the check under way, whose reply or
		// write may be what made the entry right.
		w.waitFor(ctx, 2*time.Second, "the check", func(rec logRecord) bool { return checkAfter(rec, t1) })
	}
	stopRun()
	bg.Wait()
	if !t1.IsZero() && t2.IsZero() {
		// A connect that reached the new owner right at the limit.
		t2, _ = second()
	}
	s.entry, s.connect = since(t0, t1), since(t0, t2)

	n, err := p.Neigh(netns.LANIface, movedAddr)
	if err != nil {
		return s, err
	}
	if n != nil {
		s.finalMAC, s.finalState = n.HardwareAddr.String(), arpprobe.State(n.State).String()
	}
	switch r.m {
	case methodKernel:
		s.fixer = "kernel"
	case methodCron:
		s.fixer = cronFixer(cronRuns, t1)
		var b strings.Builder
		for i, cr := range cronRuns {
			fmt.Fprintf(&b, "cron run %d at t0%+.3fs, %.3fs, exit %d\n%s", i+1,
				cr.start.Sub(t0).Seconds(), cr.end.Sub(cr.start).Seconds(), cr.exit, cr.out)
		}
		s.detail = b.String()
	case methodWatch:
		s.fixer = watchFixer(w.snapshot(), t1)
	}
	if t1.IsZero() {
		s.fixer = "none"
	}
	return s, nil
}

// cronFixer says whether the entry got right during a cron run (its
// repair, or the kernel learning from the owner's reply to it).
func cronFixer(runs []cronRun, t1 time.Time) string {
	for _, r := range runs {
		if !t1.Before(r.start) && !t1.After(r.end.Add(50*time.Millisecond)) {
			return "cron"
		}
	}
	return "kernel"
}

// watchFixer says whether watch put the new MAC in the entry (replaced)
// or made the kernel do it (healed: the kernel took the owner's reply to
// watch's request), and for what cause: it looks at the first check of
// the address that watch logged after the entry got right. If that check
// found the entry right already, the kernel did it alone ("kernel").
func watchFixer(recs []logRecord, t1 time.Time) string {
	i := slices.IndexFunc(recs, func(r logRecord) bool { return checkAfter(r, t1) })
	if i < 0 || t1.IsZero() {
		return "kernel"
	}
	switch r := recs[i]; r.Action {
	case string(arpprobe.ActionReplaced), string(arpprobe.ActionHealed):
		return fmt.Sprintf("watch (%s: %s)", r.Cause, r.Action)
	}
	return "kernel"
}

// checkAfter reports whether rec is watch's record of a check of the
// address logged after t1 (less a little: watch logs after the write
// whose event set t1, but the two clocks are read by two processes).
func checkAfter(rec logRecord, t1 time.Time) bool {
	return rec.IP == movedAddr.String() && rec.Verdict != "" && !rec.Time.Before(t1.Add(-50*time.Millisecond))
}

func since(t0, t time.Time) time.Duration {
	if t.IsZero() {
		return never
	}
	return t.Sub(t0)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
