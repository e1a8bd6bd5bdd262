package arpprobe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestRepair(t *testing.T) {
	type host struct{ mac net.HardwareAddr }
	tests := []struct {
		name       string
		cached     *Neighbor
		hosts      []net.HardwareAddr
		policy     RepairPolicy
		probe      BroadcastPolicy
		beforeRead func(n int, t *fakeTable) // n == 2 is the re-read before writing
		verdict    Verdict
		action     Action
		reason     string   // substring
		writes     []string // exactly
		after      string   // MAC in the table at the end, "" for none
	}{
		{name: "stale is replaced with the owner as REACHABLE", cached: entry(macA, StateStale),
			hosts: []net.HardwareAddr{macB}, verdict: VerdictStale, action: ActionReplaced,
			writes: []string{"set 198.18.0.2 " + macB.String() + " REACHABLE"}, after: macB.String()},
		{name: "stale healed by the kernel is not written", cached: entry(macA, StateStale),
			hosts: []net.HardwareAddr{macB}, verdict: VerdictStale, action: ActionHealed,
			beforeRead: func(n int, t *fakeTable) {
				if n == 2 {
					t.entries[0].MAC, t.entries[0].State = macB, StateReachable
				}
			}, after: macB.String()},
		{name: "permanent stale is refused by default", cached: entry(macA, StatePermanent),
			hosts: []net.HardwareAddr{macB}, verdict: VerdictStale, action: ActionRefused,
			reason: "PERMANENT", after: macA.String()},
		{name: "permanent stale with include-permanent stays permanent", cached: entry(macA, StatePermanent),
			hosts: []net.HardwareAddr{macB}, policy: RepairPolicy{IncludePermanent: true},
			verdict: VerdictStale, action: ActionReplaced,
			writes: []string{"set 198.18.0.2 " + macB.String() + " PERMANENT"}, after: macB.String()},
		{name: "dead is kept without delete-dead", cached: entry(macA, StateStale),
			verdict: VerdictDead, action: ActionNone, after: macA.String()},
		{name: "dead is deleted with delete-dead", cached: entry(macA, StateStale),
			policy: RepairPolicy{DeleteDead: true}, verdict: VerdictDead, action: ActionDeleted,
			writes: []string{"del 198.18.0.2"}},
		{name: "dead permanent is refused even with delete-dead", cached: entry(macA, StatePermanent),
			policy: RepairPolicy{DeleteDead: true}, verdict: VerdictDead, action: ActionRefused,
			reason: "PERMANENT", after: macA.String()},
		{name: "conflict is refused", cached: entry(macA, StateStale), probe: BroadcastAuto,
			hosts: []net.HardwareAddr{macB, macC}, verdict: VerdictConflict, action: ActionRefused,
			reason: "conflict", after: macA.String()},
		{name: "dry run: would replace", cached: entry(macA, StateStale), hosts: []net.HardwareAddr{macB},
			policy: RepairPolicy{DryRun: true}, verdict: VerdictStale, action: ActionWouldReplace, after: macA.String()},
		{name: "dry run: would delete", cached: entry(macA, StateStale),
			policy: RepairPolicy{DryRun: true, DeleteDead: true}, verdict: VerdictDead, action: ActionWouldDelete,
			after: macA.String()},
		{name: "entry changed to a third MAC since the snapshot", cached: entry(macA, StateStale),
			hosts: []net.HardwareAddr{macB}, verdict: VerdictStale, action: ActionRefused, reason: "changed",
			beforeRead: func(n int, t *fakeTable) {
				if n == 2 {
					t.entries[0].MAC = macC
				}
			}, after: macC.String()},
		{name: "entry gone since the snapshot is not re-added", cached: entry(macA, StateStale),
			hosts: []net.HardwareAddr{macB}, verdict: VerdictStale, action: ActionNone, reason: "gone",
			beforeRead: func(n int, t *fakeTable) {
				if n == 2 {
					t.entries = nil
				}
			}},
		{name: "uncached peer gets no entry", hosts: []net.HardwareAddr{macB}, verdict: VerdictUncached,
			action: ActionNone},
		{name: "ok is left alone", cached: entry(macA, StateReachable), hosts: []net.HardwareAddr{macA},
			verdict: VerdictOK, action: ActionNone, after: macA.String()},
		{name: "extern_learn flag is kept", cached: &Neighbor{IP: netip.MustParseAddr(peerIP), MAC: macA,
			State: StateStale, Flags: FlagExternLearned}, hosts: []net.HardwareAddr{macB},
			policy: RepairPolicy{IncludeExternLearn: true}, verdict: VerdictStale, action: ActionReplaced,
			writes: []string{"set 198.18.0.2 " + macB.String() + " REACHABLE"}, after: macB.String()},
		{name: "extern_learn entry refused without IncludeExternLearn", cached: &Neighbor{IP: netip.MustParseAddr(peerIP), MAC: macA,
			State: StateStale, Flags: FlagExternLearned}, hosts: []net.HardwareAddr{macB},
			policy: RepairPolicy{IncludePermanent: true}, verdict: VerdictStale, action: ActionRefused,
			reason: "use --include-extern-learn to change it", after: macA.String()},
		{name: "dead extern_learn entry not deleted without IncludeExternLearn", cached: &Neighbor{IP: netip.MustParseAddr(peerIP), MAC: macA,
			State: StateStale, Flags: FlagExternLearned},
			policy: RepairPolicy{DeleteDead: true}, verdict: VerdictDead, action: ActionRefused,
			reason: "use --include-extern-learn to delete it", after: macA.String()},
		{name: "entry taken by a control plane since the snapshot", cached: entry(macA, StateStale),
			hosts: []net.HardwareAddr{macB}, verdict: VerdictStale, action: ActionRefused, reason: "became extern_learn",
			beforeRead: func(n int, t *fakeTable) {
				if n == 2 {
					t.entries[0].Flags |= FlagExternLearned
				}
			}, after: macA.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var entries []Neighbor
			if tt.cached != nil {
				entries = append(entries, *tt.cached)
			}
			tbl := oneLAN(entries...)
			tbl.beforeRead = tt.beforeRead
			lan := &fakeLAN{}
			for _, m := range tt.hosts {
				lan.add(peerIP, m, 0)
			}
			policy := tt.policy
			rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(tt.probe), Repair: &policy})
			p := rep.Peers[0]
			if p.Verdict != tt.verdict || p.Action != tt.action || !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("verdict %s action %s reason %q; want %s %s %q", p.Verdict, p.Action, p.Reason,
					tt.verdict, tt.action, tt.reason)
			}
			if !reflect.DeepEqual(tbl.writes, tt.writes) {
				t.Errorf("writes %q; want %q", tbl.writes, tt.writes)
			}
			got := ""
			if p.After != nil {
				got = p.After.MAC.String()
			}
			if got != tt.after {
				t.Errorf("after %q; want %q", got, tt.after)
			}
			if tt.name == "extern_learn flag is kept" && (p.After == nil || p.After.Flags&FlagExternLearned == 0) {
				t.Errorf("after %+v lost NTF_EXT_LEARNED", p.After)
			}
			wantRepaired := 0
			if tt.verdict == VerdictStale && (tt.action == ActionReplaced || tt.action == ActionHealed) {
				wantRepaired = 1
			}
			if rep.Summary.Repaired != wantRepaired {
				t.Errorf("summary repaired %d; want %d", rep.Summary.Repaired, wantRepaired)
			}
		})
	}
}

func TestRepairPermissionStops(t *testing.T) {
	a2, a3 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	tbl := oneLAN(Neighbor{IP: a2, MAC: macA, State: StateStale}, Neighbor{IP: a3, MAC: macA, State: StateStale})
	tbl.writeErr = errEPERM
	lan := &fakeLAN{}
	lan.add("198.18.0.2", macB, 0)
	lan.add("198.18.0.3", macC, 0)
	p := NewProber(lan.config())
	defer p.Close()
	c := Checker{Table: tbl, Topology: tbl, Prober: p}
	rep, err := c.Check(context.Background(), []netip.Addr{a2, a3},
		Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{}})
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("err %v; want a permission error", err)
	}
	if rep == nil {
		t.Fatal("no report with the error")
	}
	for _, p := range rep.Peers {
		if p.Action != ActionNone || p.Reason == "" {
			t.Errorf("%s: action %s reason %q; want none with a reason", p.IP, p.Action, p.Reason)
		}
	}
}

func TestRepairStopsWhenCanceled(t *testing.T) {
	tbl := oneLAN(*entry(macA, StateStale))
	plan := []Change{{Peer: 0, Op: OpReplace, Old: tbl.entries[0],
		New: Neighbor{IP: tbl.entries[0].IP, Ifindex: 2, MAC: macB, State: StateReachable}}}
	peers := []Peer{{IP: tbl.entries[0].IP, Verdict: VerdictStale}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ApplyRepairs(ctx, tbl, peers, plan, RepairPolicy{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v; want context.Canceled", err)
	}
	if len(tbl.writes) != 0 || peers[0].Action != ActionNone {
		t.Errorf("writes %q, action %s; want nothing written, none", tbl.writes, peers[0].Action)
	}
}

func TestPlanRepairsNeverInventsAMAC(t *testing.T) {
	// Whatever the verdicts, a planned replace writes only the peer's Owner.
	for _, v := range Verdicts {
		peers := []Peer{{IP: netip.MustParseAddr(peerIP), Verdict: v, Cached: entry(macA, StateStale),
			Owner: macB, Replies: replies(macB)}}
		for _, c := range PlanRepairs(peers, RepairPolicy{DeleteDead: true, IncludePermanent: true}) {
			if c.Op == OpReplace && (v != VerdictStale || c.New.MAC.String() != macB.String()) {
				t.Errorf("verdict %s: planned %+v", v, c)
			}
			if c.Op == OpDelete && v != VerdictDead {
				t.Errorf("verdict %s: planned delete", v)
			}
		}
	}
}

// PlanRepairs sets the reasons of the actions it decides, and keeps the
// reasons that say why a peer was not probed: an unknown peer's, and an
// offlink peer's (repair reports what verify reports).
func TestPlanRepairsKeepsReasons(t *testing.T) {
	peers := []Peer{
		{IP: netip.MustParseAddr("198.19.0.9"), Verdict: VerdictOfflink, Reason: "reached through gateway 198.18.0.254"},
		{IP: netip.MustParseAddr("198.19.5.5"), Verdict: VerdictOfflink, Reason: "no route"},
		{IP: netip.MustParseAddr("198.18.0.7"), Verdict: VerdictUnknown, Reason: "deadline exceeded"},
		{IP: netip.MustParseAddr("198.18.0.2"), Verdict: VerdictOK, Reason: "left from an earlier plan", Cached: entry(macA, StateStale)},
	}
	want := []string{"reached through gateway 198.18.0.254", "no route", "deadline exceeded", ""}
	if plan := PlanRepairs(peers, RepairPolicy{DeleteDead: true}); len(plan) != 0 {
		t.Errorf("plan %v; want nothing", plan)
	}
	for i, p := range peers {
		if p.Reason != want[i] || p.Action != ActionNone {
			t.Errorf("%s (%s): action %s, reason %q; want none, %q", p.IP, p.Verdict, p.Action, p.Reason, want[i])
		}
	}
}
