package arpprobe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestForeignVLANReplies: a reply still tagged with a VLAN ID comes from
// another VLAN's LAN (the kernel hands a socket its own interface's frames
// untagged), so it is dropped and counted; a priority tag (VLAN 0) is
// this LAN's.
func TestForeignVLANReplies(t *testing.T) {
	peer, us := netip.MustParseAddr(peerIP), netip.MustParseAddr("198.18.0.1")
	foreign := tag(replyFrame(macC, peer, proberMAC, us), etherTypeVLAN, 7)
	priority := tag(replyFrame(macA, peer, proberMAC, us), etherTypeVLAN, 0x6000)

	t.Run("check", func(t *testing.T) {
		tbl := oneLAN(*entry(macA, StateReachable))
		lan := &fakeLAN{}
		lan.onSend = func(Frame) {
			lan.inject(foreign)
			lan.inject(priority)
		}
		rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(BroadcastAlways)})
		p := rep.Peers[0]
		if p.Verdict != VerdictOK || p.Owner.String() != macA.String() {
			t.Errorf("verdict %s owner %s (replies %+v); want ok from %s, the other VLAN's %s ignored",
				p.Verdict, p.Owner, p.Replies, macA, macC)
		}
		if d := rep.Stats.Dropped[DropVLAN]; d == 0 {
			t.Errorf("dropped[vlan] = 0; want the tagged replies counted")
		}
	})

	t.Run("ping", func(t *testing.T) {
		lan, cfg := pingLAN()
		cfg.Count, cfg.Timeout = 1, fastOpts(BroadcastAuto).Timeout
		lan.onSend = func(Frame) {
			lan.inject(foreign)
			lan.inject(priority)
		}
		st, err := Ping(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Owners) != 1 || st.Owners[0].MAC.String() != macA.String() {
			t.Errorf("owners %+v; want only %s, the other VLAN's %s ignored", st.Owners, macA, macC)
		}
	})
}

// TestReplyBeforeAskedIsUnsolicited: a reply for a peer that is under
// check but not asked yet (its request still waits for the rate limit)
// answers someone else's question: it is not the peer's owner, and it is
// counted as unsolicited rather than vanishing from the counts.
func TestReplyBeforeAskedIsUnsolicited(t *testing.T) {
	a2, a3 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	tbl := oneLAN(Neighbor{IP: a2, MAC: macA, State: StateReachable}, Neighbor{IP: a3, MAC: macB, State: StateReachable})
	lan := &fakeLAN{}
	lan.add(a2.String(), macA, 0)
	lan.add(a3.String(), macB, 0)
	early := replyFrame(macC, a3, proberMAC, netip.MustParseAddr("198.18.0.1"))
	var once sync.Once
	lan.onSend = func(f Frame) {
		if f.TargetIP == a2 {
			once.Do(func() { lan.inject(early) })
		}
	}
	opts := fastOpts(BroadcastAlways)
	// Two frames per peer and a burst of two: .3 waits 200 ms for tokens,
	// while the early reply for it arrives.
	opts.Rate, opts.BroadcastRate = 10, 10
	rep := runCheck(t, tbl, lan, []string{a2.String(), a3.String()}, Options{Probe: opts})
	for i, want := range []net.HardwareAddr{macA, macB} {
		if p := rep.Peers[i]; p.Verdict != VerdictOK || p.Owner.String() != want.String() {
			t.Errorf("%s: verdict %s owner %s (replies %+v); want ok, %s", p.IP, p.Verdict, p.Owner, p.Replies, want)
		}
	}
	if d := rep.Stats.Dropped[DropUnsolicited]; d != 1 {
		t.Errorf("dropped[unsolicited] = %d; want the early reply, 1", d)
	}
}

// TestPlanRepairsKeepsUnknownReason: planning a repair must not erase why
// a peer could not be checked.
func TestPlanRepairsKeepsUnknownReason(t *testing.T) {
	peers := []Peer{
		{IP: netip.MustParseAddr(peerIP), Verdict: VerdictUnknown, Reason: "send: network is down", Cached: entry(macA, StateStale)},
		{IP: netip.MustParseAddr("198.18.0.3"), Verdict: VerdictOK, Reason: "left over", Cached: entry(macA, StateStale)},
	}
	if plan := PlanRepairs(peers, RepairPolicy{DeleteDead: true}); len(plan) != 0 {
		t.Errorf("plan %+v; want none", plan)
	}
	if p := peers[0]; p.Action != ActionNone || p.Reason != "send: network is down" {
		t.Errorf("unknown peer: action %s, reason %q; want none and its reason kept", p.Action, p.Reason)
	}
	if p := peers[1]; p.Action != ActionNone || p.Reason != "" {
		t.Errorf("ok peer: action %s, reason %q; want none, no reason", p.Action, p.Reason)
	}
}

// TestRepairKeepsStaticnessOfTheCurrentEntry: an entry pinned PERMANENT
// between the snapshot and the repair stays PERMANENT when it is allowed
// to be corrected; an entry unpinned meanwhile is written as an ordinary
// one, which the kernel keeps validating.
func TestRepairKeepsStaticnessOfTheCurrentEntry(t *testing.T) {
	for _, tt := range []struct {
		name       string
		before, at State // in the snapshot, when re-read
		want       string
	}{
		{"pinned since the snapshot", StateStale, StatePermanent, "PERMANENT"},
		{"unpinned since the snapshot", StatePermanent, StateStale, "REACHABLE"},
		{"ordinary throughout", StateStale, StateDelay, "REACHABLE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tbl := oneLAN(*entry(macA, tt.before))
			tbl.beforeRead = func(n int, t *fakeTable) {
				if n == 2 {
					t.entries[0].State = tt.at
				}
			}
			lan := &fakeLAN{}
			lan.add(peerIP, macB, 0)
			rep := runCheck(t, tbl, lan, []string{peerIP},
				Options{Probe: fastOpts(BroadcastAuto), Repair: &RepairPolicy{IncludePermanent: true}})
			want := []string{"set " + peerIP + " " + macB.String() + " " + tt.want}
			if p := rep.Peers[0]; p.Action != ActionReplaced || len(tbl.writes) != 1 || tbl.writes[0] != want[0] {
				t.Errorf("action %s (%q), writes %q; want replaced, %q", p.Action, p.Reason, tbl.writes, want)
			}
		})
	}
}

// dropsConn is a fakeLAN conn whose kernel reports dropped frames.
type dropsConn struct {
	FrameConn
	drops uint64
}

func (c *dropsConn) KernelDrops() (uint64, error) { return c.drops, nil }

// TestKernelDropsMakeSilenceUnverified: when the kernel keeps dropping
// received frames during every attempt, a verdict resting on a silence
// (dead, stale) may be wrong, so the peer is unknown and not repaired;
// what did answer counts: ok, conflict and uncached stand.
func TestKernelDropsMakeSilenceUnverified(t *testing.T) {
	ip := func(n byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, n}) }
	tbl := oneLAN(Neighbor{IP: ip(2), MAC: macA, State: StateStale}, Neighbor{IP: ip(3), MAC: macA, State: StateStale},
		Neighbor{IP: ip(4), MAC: macA, State: StateStale}, Neighbor{IP: ip(5), MAC: macA, State: StateStale})
	lan := &fakeLAN{}
	lan.add(ip(2).String(), macA, 0) // ok
	lan.add(ip(3).String(), macB, 0) // stale
	lan.add(ip(5).String(), macB, 0) // conflict
	lan.add(ip(5).String(), macC, 0)
	lan.add(ip(6).String(), macC, 0) // uncached; .4 is dead
	cfg := lan.config()
	listen := cfg.Listen
	cfg.Listen = func(ifi *net.Interface) (FrameConn, error) {
		c, err := listen(ifi)
		return &dropsConn{FrameConn: c, drops: 3}, err
	}
	p := NewProber(cfg)
	defer p.Close()
	opts := fastOpts(BroadcastAuto)
	rep, err := (&Checker{Table: tbl, Topology: tbl, Prober: p}).Check(t.Context(),
		[]netip.Addr{ip(2), ip(3), ip(4), ip(5), ip(6)},
		Options{Probe: opts, Repair: &RepairPolicy{DeleteDead: true}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stats.KernelDrops == 0 || rep.Stats.KernelDrops%3 != 0 {
		t.Errorf("Stats.KernelDrops = %d; want a multiple of 3, the drops of each poll", rep.Stats.KernelDrops)
	}
	want := []Verdict{VerdictOK, VerdictUnknown, VerdictUnknown, VerdictConflict, VerdictUncached}
	for i, p := range rep.Peers {
		if p.Verdict != want[i] {
			t.Errorf("%s: %s (%q); want %s", p.IP, p.Verdict, p.Reason, want[i])
		}
		if p.Verdict == VerdictUnknown && (p.Owner != nil || p.Action != ActionNone ||
			!regexp.MustCompile(`^the kernel dropped [1-9]\d* received frames .* during every attempt`).MatchString(p.Reason)) {
			t.Errorf("%s: owner %s, action %s, reason %q; want no owner, none, the drops named", p.IP, p.Owner, p.Action, p.Reason)
		}
	}
	if len(tbl.writes) != 0 {
		t.Errorf("writes %q; want none on unverified verdicts", tbl.writes)
	}
	// The silent peers were asked again, Attempts more times at most: the
	// dead one by unicast three times (its first attempt and two redos,
	// the whole budget), then by unicast and broadcast once.
	if n := lan.count(func(f Frame) bool { return f.TargetIP == ip(4) }); n != 5 {
		t.Errorf("dead peer asked %d times; want 5", n)
	}
}

// TestDropsDuringAnAttemptAskAgain: replies lost in the kernel during the
// first attempt (a storm that passed) cost another attempt, not the
// verdict: every peer comes out exact, and the repair writes the owner.
func TestDropsDuringAnAttemptAskAgain(t *testing.T) {
	ip := func(n byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, n}) }
	for _, policy := range []BroadcastPolicy{BroadcastAuto, BroadcastAlways} {
		t.Run(string(policy), func(t *testing.T) {
			tbl := oneLAN(Neighbor{IP: ip(2), MAC: macA, State: StateStale}, Neighbor{IP: ip(3), MAC: macA, State: StateStale},
				Neighbor{IP: ip(4), MAC: macA, State: StateStale}, Neighbor{IP: ip(5), MAC: macA, State: StateStale})
			lan := &fakeLAN{}
			lan.add(ip(2).String(), macA, 0) // ok
			lan.add(ip(3).String(), macB, 0) // stale
			lan.add(ip(5).String(), macA, 0) // conflict
			lan.add(ip(5).String(), macC, 0)
			lan.add(ip(6).String(), macC, 0) // uncached; .4 is dead
			// Every reply to the first request for each address, and
			// each first broadcast, is lost.
			var mu sync.Mutex
			asked := map[string]bool{}
			lan.lose = func(f Frame, h fakeHost) bool {
				mu.Lock()
				defer mu.Unlock()
				k := fmt.Sprint(f.TargetIP, isBroadcast(f))
				if asked[k+h.mac.String()] {
					return false
				}
				asked[k+h.mac.String()] = true
				return true
			}
			rep := runCheck(t, tbl, lan, []string{"198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6"},
				Options{Probe: fastOpts(policy), Repair: &RepairPolicy{DeleteDead: true}})
			want := []struct {
				v     Verdict
				owner net.HardwareAddr
				a     Action
			}{
				{VerdictOK, macA, ActionNone}, {VerdictStale, macB, ActionReplaced}, {VerdictDead, nil, ActionDeleted},
				{VerdictConflict, nil, ActionRefused}, {VerdictUncached, macC, ActionNone},
			}
			if policy == BroadcastAuto {
				// The cached MAC answers the attempt asked again, and
				// auto asks nobody else: ok, as without drops.
				want[3].v, want[3].owner, want[3].a = VerdictOK, macA, ActionNone
			}
			for i, p := range rep.Peers {
				if p.Verdict != want[i].v || p.Owner.String() != want[i].owner.String() || p.Action != want[i].a {
					t.Errorf("%s: %s owner %s action %s (%q); want %s owner %s action %s",
						p.IP, p.Verdict, p.Owner, p.Action, p.Reason, want[i].v, want[i].owner, want[i].a)
				}
			}
			if rep.Stats.KernelDrops == 0 {
				t.Errorf("Stats.KernelDrops = 0; want the lost replies counted")
			}
		})
	}
}

// TestUnaskedMACsDoNotDecide: while only the cached MAC has been asked
// (by unicast), a reply from another MAC answers someone else's request
// (gratuitous, forged, another prober's): it is counted as unsolicited
// and decides nothing. Under auto the broadcast still goes out and finds
// every owner; under never the verdict stays ok or dead.
func TestUnaskedMACsDoNotDecide(t *testing.T) {
	peer, us := netip.MustParseAddr(peerIP), netip.MustParseAddr("198.18.0.1")
	for _, tt := range []struct {
		policy    BroadcastPolicy
		want      Verdict
		broadcast int
	}{
		{BroadcastAuto, VerdictConflict, 1},
		{BroadcastNever, VerdictDead, 0},
	} {
		t.Run(string(tt.policy), func(t *testing.T) {
			tbl := oneLAN(*entry(macA, StateStale))
			lan := &fakeLAN{}
			lan.add(peerIP, macB, 0) // two owners answer broadcasts
			lan.add(peerIP, macC, 0)
			var once sync.Once
			lan.onSend = func(f Frame) {
				if !isBroadcast(f) {
					once.Do(func() { lan.inject(replyFrame(macB, peer, proberMAC, us)) })
				}
			}
			rep := runCheck(t, tbl, lan, []string{peerIP},
				Options{Probe: fastOpts(tt.policy), Repair: &RepairPolicy{}})
			p := rep.Peers[0]
			if p.Verdict != tt.want || len(tbl.writes) != 0 {
				t.Errorf("verdict %s owner %s (replies %+v), writes %q; want %s, nothing written",
					p.Verdict, p.Owner, p.Replies, tbl.writes, tt.want)
			}
			if n := lan.count(isBroadcast); n != tt.broadcast {
				t.Errorf("%d broadcasts; want %d", n, tt.broadcast)
			}
			if rep.Stats.Dropped[DropUnsolicited] == 0 {
				t.Errorf("the unasked reply was not counted as unsolicited")
			}
		})
	}
}

// TestLateRepliesDecideNothing: a reply for a peer whose probe has ended
// (its windows passed, or it settled) comes too late to count, even when
// other peers of the run are still being probed: it is counted as
// unsolicited and changes neither the peer's replies nor its verdict, so
// a peer's verdict does not depend on what else the run checks. The
// second peer's requests wait for the rate limit (two frames a run, four
// a second), long after the first peer's window; the late reply comes
// as they are sent.
func TestLateRepliesDecideNothing(t *testing.T) {
	first, second := netip.MustParseAddr("198.18.0.9"), netip.MustParseAddr("198.18.0.2")
	us := netip.MustParseAddr("198.18.0.1")
	for _, tt := range []struct {
		name    string
		owner   net.HardwareAddr // of the first peer; nil: nobody
		want    Verdict
		action  Action
		written []string
	}{
		{"a dead peer does not become stale", nil, VerdictDead, ActionDeleted, []string{"del " + first.String()}},
		{"an ok peer does not become a conflict", macA, VerdictOK, ActionNone, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tbl := oneLAN(Neighbor{IP: first, MAC: macA, State: StateStale}, Neighbor{IP: second, MAC: macB, State: StateStale})
			lan := &fakeLAN{}
			if tt.owner != nil {
				lan.add(first.String(), tt.owner, 0)
			}
			lan.add(second.String(), macB, 0)
			var once sync.Once
			lan.onSend = func(f Frame) {
				if f.TargetIP == second {
					once.Do(func() { lan.inject(replyFrame(macC, first, proberMAC, us)) })
				}
			}
			opts := ProbeOptions{Timeout: 40 * time.Millisecond, Attempts: 1, Settle: 5 * time.Millisecond,
				Broadcast: BroadcastAlways, Rate: 4, BroadcastRate: 4}
			rep := runCheck(t, tbl, lan, []string{first.String(), second.String()},
				Options{Probe: opts, Repair: &RepairPolicy{DeleteDead: true}})
			p := rep.Peers[0]
			if p.Verdict != tt.want || p.Action != tt.action || p.Owner.String() != tt.owner.String() {
				t.Errorf("%s: %s owner %q action %s (replies %+v, reason %q); want %s owner %q action %s",
					p.IP, p.Verdict, p.Owner, p.Action, p.Replies, p.Reason, tt.want, tt.owner, tt.action)
			}
			for _, r := range p.Replies {
				if r.MAC.String() == macC.String() {
					t.Errorf("%s: the late reply from %s was recorded: %+v", p.IP, macC, p.Replies)
				}
			}
			if q := rep.Peers[1]; q.Verdict != VerdictOK {
				t.Errorf("%s: %s (%q); want ok", q.IP, q.Verdict, q.Reason)
			}
			if d := rep.Stats.Dropped[DropUnsolicited]; d != 1 {
				t.Errorf("dropped[unsolicited] = %d; want the late reply, 1", d)
			}
			if !slices.Equal(tbl.writes, tt.written) {
				t.Errorf("writes %q; want %q", tbl.writes, tt.written)
			}
		})
	}
}
