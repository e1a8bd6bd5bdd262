package arpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// Faults met with fakes: a table whose dumps fail, sends that fail, a
// run cut short while it repairs, an interface that does not exist. The
// namespace tests in hostile_lan_linux_test.go meet the real ones.

// failingTable is a fakeTable whose Neighbors fails on the reads for
// which failRead returns an error (1 = the snapshot, 2 = the re-read
// before repairing), and which calls onSet before each SetNeighbor.
type failingTable struct {
	*fakeTable
	failRead func(n int) error
	onSet    func(n Neighbor)
	reads    int
}

func (t *failingTable) Neighbors(ctx context.Context) ([]Neighbor, error) {
	t.reads++
	if t.failRead != nil {
		if err := t.failRead(t.reads); err != nil {
			return nil, err
		}
	}
	return t.fakeTable.Neighbors(ctx)
}

func (t *failingTable) SetNeighbor(ctx context.Context, n Neighbor) error {
	if t.onSet != nil {
		t.onSet(n)
	}
	return t.fakeTable.SetNeighbor(ctx, n)
}

// twoStale is a table with two stale peers and a LAN where new owners
// answer for both.
func twoStale() (*fakeTable, *fakeLAN, []netip.Addr) {
	a2, a3 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	tbl := oneLAN(Neighbor{IP: a2, MAC: macA, State: StateStale}, Neighbor{IP: a3, MAC: macA, State: StateStale})
	lan := &fakeLAN{}
	lan.add(a2.String(), macB, 0)
	lan.add(a3.String(), macC, 0)
	return tbl, lan, []netip.Addr{a2, a3}
}

// interrupted is what Kernel returns when every attempt of a dump was
// interrupted.
var interrupted = fmt.Errorf("arpprobe: list neighbours: %w", netlink.ErrDumpInterrupted)

func TestFaultDumpInterrupted(t *testing.T) {
	t.Run("snapshot: nothing is sent", func(t *testing.T) {
		tbl, lan, peers := twoStale()
		ft := &failingTable{fakeTable: tbl, failRead: func(int) error { return interrupted }}
		p := NewProber(lan.config())
		defer p.Close()
		c := Checker{Table: ft, Topology: tbl, Prober: p}
		rep, err := c.Check(t.Context(), peers, Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
		if !errors.Is(err, netlink.ErrDumpInterrupted) || !strings.Contains(err.Error(), "snapshot") || rep != nil {
			t.Errorf("Check: %v, report %v; want no report and an error naming the snapshot and the interrupted dump", err, rep)
		}
		if n := lan.count(func(Frame) bool { return true }); n != 0 || len(tbl.writes) != 0 {
			t.Errorf("%d frames sent, writes %q; want nothing", n, tbl.writes)
		}
	})
	t.Run("re-read before repair: nothing is written", func(t *testing.T) {
		tbl, lan, peers := twoStale()
		ft := &failingTable{fakeTable: tbl, failRead: func(n int) error {
			if n == 2 {
				return interrupted
			}
			return nil
		}}
		p := NewProber(lan.config())
		defer p.Close()
		c := Checker{Table: ft, Topology: tbl, Prober: p}
		rep, err := c.Check(t.Context(), peers, Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
		if !errors.Is(err, netlink.ErrDumpInterrupted) || rep == nil {
			t.Fatalf("Check: %v, report %v; want the report and the interrupted dump", err, rep)
		}
		for _, p := range rep.Peers {
			if p.Verdict != VerdictStale || p.Action != ActionNone || !strings.Contains(p.Reason, "not repaired") {
				t.Errorf("%s: %s, action %s (%q); want stale, none, not repaired", p.IP, p.Verdict, p.Action, p.Reason)
			}
		}
		if len(tbl.writes) != 0 || rep.Summary.Repaired != 0 {
			t.Errorf("writes %q, %d repaired; want none", tbl.writes, rep.Summary.Repaired)
		}
	})
}

// TestKernelDumpRetries checks that the real Kernel's dumps are tried
// again when the kernel reports them interrupted (NLM_F_DUMP_INTR), up
// to dumpAttempts in all, and that ctx stops them.
func TestKernelDumpRetries(t *testing.T) {
	partial := []int{1} // vishvananda/netlink returns partial results with the error
	for _, fails := range []int{0, 1, dumpAttempts - 1, dumpAttempts, dumpAttempts + 3} {
		t.Run(fmt.Sprintf("%d interrupted", fails), func(t *testing.T) {
			calls := 0
			got, err := dump(t.Context(), "list neighbours", func() ([]int, error) {
				calls++
				if calls <= fails {
					return partial, netlink.ErrDumpInterrupted
				}
				return []int{1, 2, 3}, nil
			})
			if fails < dumpAttempts {
				if err != nil || len(got) != 3 || calls != fails+1 {
					t.Errorf("got %v, %v after %d calls; want the whole dump after %d", got, err, calls, fails+1)
				}
				return
			}
			if !errors.Is(err, netlink.ErrDumpInterrupted) || got != nil || calls != dumpAttempts ||
				!strings.HasPrefix(err.Error(), "arpprobe: list neighbours: ") {
				t.Errorf("got %v, %v after %d calls; want no partial result and the error after %d", got, err, calls, dumpAttempts)
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		_, err := dump(ctx, "list neighbours", func() ([]int, error) {
			calls++
			cancel()
			return nil, netlink.ErrDumpInterrupted
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("%v after %d calls; want context.Canceled after 1", err, calls)
		}
	})
	t.Run("other errors are not retried", func(t *testing.T) {
		calls := 0
		_, err := dump(t.Context(), "list links", func() ([]int, error) {
			calls++
			return nil, syscall.ENOBUFS
		})
		if !errors.Is(err, syscall.ENOBUFS) || calls != 1 {
			t.Errorf("%v after %d calls; want ENOBUFS after 1", err, calls)
		}
	})
}

// failConn fails the writes for which fail returns an error; it counts
// writes from 1 over every conn of a test.
type failConn struct {
	FrameConn
	fail func(f Frame, n int) error
	n    *int
}

func (c *failConn) WriteFrame(b []byte) error {
	f, err := ParseFrame(b)
	if err != nil {
		return err
	}
	*c.n++
	if err := c.fail(f, *c.n); err != nil {
		return err
	}
	return c.FrameConn.WriteFrame(b)
}

func sendErr(errno syscall.Errno) error { return os.NewSyscallError("sendto", errno) }

func TestFaultSendErrors(t *testing.T) {
	a3 := netip.MustParseAddr("198.18.0.3")
	tests := []struct {
		name   string
		fail   func(f Frame, n int) error
		want   [2]Verdict
		reason string // of the unknown peers
	}{
		{"EAGAIN and ENOBUFS a few times are retried", func() func(f Frame, n int) error {
			tries := map[netip.Addr]int{}
			return func(f Frame, n int) error {
				tries[f.TargetIP]++
				switch tries[f.TargetIP] {
				case 1:
					return sendErr(syscall.EAGAIN)
				case 2:
					return sendErr(syscall.ENOBUFS)
				}
				return nil
			}
		}(), [2]Verdict{VerdictStale, VerdictStale}, ""},
		{"lasting ENOBUFS gives the peer up", func(f Frame, n int) error {
			if f.TargetIP == a3 {
				return sendErr(syscall.ENOBUFS)
			}
			return nil
		}, [2]Verdict{VerdictStale, VerdictUnknown}, "send: sendto: no buffer space available"},
		{"lasting EAGAIN gives the peer up", func(f Frame, n int) error {
			if f.TargetIP == a3 {
				return sendErr(syscall.EAGAIN)
			}
			return nil
		}, [2]Verdict{VerdictStale, VerdictUnknown}, "send: sendto: resource temporarily unavailable"},
		{"interface down", func(Frame, int) error { return sendErr(syscall.ENETDOWN) },
			[2]Verdict{VerdictUnknown, VerdictUnknown}, "send: sendto: network is down"},
		{"interface gone after the first request", func(f Frame, n int) error {
			if n > 1 {
				return sendErr(syscall.ENXIO)
			}
			return nil
		}, [2]Verdict{VerdictUnknown, VerdictUnknown}, "send: sendto: no such device or address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, lan, peers := twoStale()
			cfg := lan.config()
			listen, writes := cfg.Listen, 0
			cfg.Listen = func(ifi *net.Interface) (FrameConn, error) {
				c, err := listen(ifi)
				return &failConn{FrameConn: c, fail: tt.fail, n: &writes}, err
			}
			p := NewProber(cfg)
			defer p.Close()
			rep, err := (&Checker{Table: tbl, Topology: tbl, Prober: p}).Check(t.Context(), peers,
				Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			for i, p := range rep.Peers {
				if p.Verdict != tt.want[i] {
					t.Errorf("%s: verdict %s (%q); want %s", p.IP, p.Verdict, p.Reason, tt.want[i])
				}
				if p.Verdict == VerdictUnknown && (p.Action != ActionNone || !strings.Contains(p.Reason, tt.reason)) {
					t.Errorf("%s: action %s, reason %q; want none, %q", p.IP, p.Action, p.Reason, tt.reason)
				}
				if p.Verdict == VerdictStale && p.Action != ActionReplaced {
					t.Errorf("%s: stale, action %s; want replaced", p.IP, p.Action)
				}
			}
			for _, w := range tbl.writes {
				for i, p := range rep.Peers {
					if strings.Contains(w, " "+p.IP.String()+" ") && tt.want[i] != VerdictStale {
						t.Errorf("write %q for a peer that could not be checked", w)
					}
				}
			}
		})
	}
}

func TestFaultRepairInterrupted(t *testing.T) {
	// SIGINT or SIGTERM cancels the run's context while the first entry
	// is being written: that write completes, no other starts, and the
	// report says which entry was repaired and which was not.
	tbl, lan, peers := twoStale()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ft := &failingTable{fakeTable: tbl, onSet: func(Neighbor) { cancel() }}
	p := NewProber(lan.config())
	defer p.Close()
	c := Checker{Table: ft, Topology: tbl, Prober: p}
	rep, err := c.Check(ctx, peers, Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("Check: %v, report %v; want the report and context.Canceled", err, rep)
	}
	if len(tbl.writes) != 1 {
		t.Fatalf("writes %q; want exactly the one in progress", tbl.writes)
	}
	first, second := rep.Peers[0], rep.Peers[1]
	if first.Action != ActionReplaced || first.After == nil || first.After.MAC.String() != macB.String() {
		t.Errorf("%s: action %s, after %+v; want replaced with %s", first.IP, first.Action, first.After, macB)
	}
	if second.Action != ActionNone || !strings.Contains(second.Reason, "not repaired") ||
		!strings.Contains(second.Reason, "canceled") || second.After == nil || second.After.MAC.String() != macA.String() {
		t.Errorf("%s: action %s (%q), after %+v; want none, not repaired, the old entry", second.IP, second.Action, second.Reason, second.After)
	}
	if rep.Summary.Repaired != 1 || rep.Summary.Stale != 2 {
		t.Errorf("summary %+v; want 2 stale, 1 repaired", rep.Summary)
	}
}

func TestFaultDeadlineBeforeRepair(t *testing.T) {
	// The deadline passes after probing, as the table is re-read before
	// the first write: nothing is written.
	tbl, lan, peers := twoStale()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tbl.beforeRead = func(n int, _ *fakeTable) {
		if n == 2 {
			cancel()
		}
	}
	rep, err := (&Checker{Table: tbl, Topology: tbl, Prober: NewProber(lan.config())}).Check(ctx, peers,
		Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{DeleteDead: true}})
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("Check: %v, %v; want the report and context.Canceled", err, rep)
	}
	if len(tbl.writes) != 0 {
		t.Errorf("writes %q; want none", tbl.writes)
	}
	for _, p := range rep.Peers {
		if p.Action != ActionNone || !strings.Contains(p.Reason, "not repaired") {
			t.Errorf("%s: action %s (%q); want none, not repaired", p.IP, p.Action, p.Reason)
		}
	}
}

func TestFaultDeadlineDuringProbe(t *testing.T) {
	// Peers the deadline cuts off are unknown and never repaired; a peer
	// finished before it keeps its verdict.
	a2, a9 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.9")
	tbl := oneLAN(Neighbor{IP: a2, MAC: macA, State: StateReachable}, Neighbor{IP: a9, MAC: macA, State: StateStale})
	lan := &fakeLAN{}
	lan.add(a2.String(), macA, 0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	lan.onSend = func(f Frame) {
		if f.TargetIP == a9 && isBroadcast(f) {
			cancel() // the deadline, in .9's second attempt, long after .2 answered
		}
	}
	p := NewProber(lan.config())
	defer p.Close()
	rep, err := (&Checker{Table: tbl, Topology: tbl, Prober: p}).Check(ctx, []netip.Addr{a2, a9},
		Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{DeleteDead: true}})
	if rep == nil {
		t.Fatalf("Check: %v; want a report", err)
	}
	if p := rep.Peers[1]; p.Verdict != VerdictUnknown || !strings.Contains(p.Reason, "canceled") || p.Action != ActionNone {
		t.Errorf("%s: %s (%q), action %s; want unknown, canceled, none", p.IP, p.Verdict, p.Reason, p.Action)
	}
	if len(tbl.writes) != 0 || rep.Summary.Unknown != 1 {
		t.Errorf("writes %q, summary %+v; want nothing written, one unknown", tbl.writes, rep.Summary)
	}
}

func TestFaultUnknownInterface(t *testing.T) {
	for _, peers := range [][]netip.Addr{nil, {netip.MustParseAddr(peerIP)}} {
		tbl := oneLAN(*entry(macA, StateStale))
		lan := &fakeLAN{}
		p := NewProber(lan.config())
		rep, err := (&Checker{Table: tbl, Topology: tbl, Prober: p}).Check(t.Context(), peers,
			Options{Interface: "nosuch", Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
		p.Close()
		if !errors.Is(err, ErrUnknownInterface) || !strings.Contains(err.Error(), `"nosuch"`) || rep != nil {
			t.Errorf("peers %v: %v, report %v; want ErrUnknownInterface naming nosuch, no report", peers, err, rep)
		}
		if n := lan.count(func(Frame) bool { return true }); n != 0 || len(tbl.writes) != 0 {
			t.Errorf("peers %v: %d frames, writes %q; want nothing", peers, n, tbl.writes)
		}
	}
}

// stuckConn is a fakeLAN conn whose writes block, as a socket's do while
// its send buffer is full and the interface's transmit queue does not
// drain, until a write deadline in the past is set. It records the
// deadlines set.
type stuckConn struct {
	FrameConn
	stuck     bool
	blocked   chan struct{} // closed when a write first blocks
	once      sync.Once
	mu        sync.Mutex
	deadline  time.Time
	deadlines []time.Time
	changed   chan struct{}
}

func newStuckConn(c FrameConn) *stuckConn {
	return &stuckConn{FrameConn: c, stuck: true, blocked: make(chan struct{}), changed: make(chan struct{}, 1)}
}

func (c *stuckConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

func (c *stuckConn) WriteFrame(b []byte) error {
	for {
		c.mu.Lock()
		stuck, d := c.stuck, c.deadline
		c.mu.Unlock()
		if !stuck {
			return c.FrameConn.WriteFrame(b)
		}
		if !d.IsZero() && !d.After(time.Now()) {
			return fmt.Errorf("write on fake: %w", os.ErrDeadlineExceeded)
		}
		c.once.Do(func() { close(c.blocked) })
		<-c.changed
	}
}

// TestFaultWriteBlockedPastTheEnd: a write that blocks because the send
// buffer stays full (a transmit queue that does not drain) is cut short
// when the run's context ends, by a write deadline: the run returns, the
// peers are unknown for the cancellation (not for a failed send), nothing
// is written, and the deadline is cleared again, so that the next run on
// the same socket sends.
func TestFaultWriteBlockedPastTheEnd(t *testing.T) {
	tbl, lan, peers := twoStale()
	cfg := lan.config()
	listen := cfg.Listen
	conns := make(chan *stuckConn, 1)
	cfg.Listen = func(ifi *net.Interface) (FrameConn, error) {
		c, err := listen(ifi)
		sc := newStuckConn(c)
		conns <- sc // one interface: one conn
		return sc, err
	}
	p := NewProber(cfg)
	defer p.Close()
	c := Checker{Table: tbl, Topology: tbl, Prober: p}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := c.Check(ctx, peers, Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
		done <- result{rep, err}
	}()
	conn := <-conns
	<-conn.blocked
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute): // a guard against a hang
		t.Fatal("Check did not return after its context ended while a write was blocked")
	}
	if res.rep == nil {
		t.Fatalf("Check: %v; want a report", res.err)
	}
	for _, p := range res.rep.Peers {
		if p.Verdict != VerdictUnknown || !strings.Contains(p.Reason, "canceled") || p.Action != ActionNone {
			t.Errorf("%s: %s, %s (%q); want unknown, canceled, none", p.IP, p.Verdict, p.Action, p.Reason)
		}
	}
	if len(tbl.writes) != 0 {
		t.Errorf("writes %q; want none", tbl.writes)
	}
	conn.mu.Lock()
	conn.stuck = false
	deadlines := slices.Clone(conn.deadlines)
	conn.mu.Unlock()
	if len(deadlines) < 2 || deadlines[0].IsZero() || !deadlines[len(deadlines)-1].IsZero() {
		t.Fatalf("write deadlines set %v; want one that cut the write, then none", deadlines)
	}
	rep, err := c.Check(t.Context(), peers, Options{Probe: fastOpts(BroadcastAuto)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Peers {
		if p.Verdict != VerdictStale {
			t.Errorf("the next run: %s: %s (%q); want stale", p.IP, p.Verdict, p.Reason)
		}
	}
}
