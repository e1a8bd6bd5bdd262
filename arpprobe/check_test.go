package arpprobe

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const peerIP = "198.18.0.2"

func fastOpts(policy BroadcastPolicy) ProbeOptions {
	return ProbeOptions{Timeout: 40 * time.Millisecond, Attempts: 2, Broadcast: policy, Settle: 5 * time.Millisecond}
}

func runCheck(t *testing.T, tbl *fakeTable, lan *fakeLAN, peers []string, opts Options) *Report {
	t.Helper()
	p := NewProber(lan.config())
	defer p.Close()
	c := Checker{Table: tbl, Topology: tbl, Prober: p}
	var addrs []netip.Addr
	for _, s := range peers {
		addrs = append(addrs, netip.MustParseAddr(s))
	}
	rep, err := c.Check(context.Background(), addrs, opts)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

func TestCheckVerdicts(t *testing.T) {
	type host struct {
		mac   net.HardwareAddr
		delay time.Duration
	}
	tests := []struct {
		name      string
		cached    *Neighbor // nil: no entry
		hosts     []host
		policy    BroadcastPolicy
		want      Verdict
		owner     net.HardwareAddr
		unicast   int // frames sent, exactly
		broadcast int
		// slow: the owner answers after the unicast wait (Timeout/5)
		// under auto, so a broadcast (and a second unicast) may go out
		// before its answer is read, or not on a machine slow enough.
		slow bool
	}{
		{name: "ok costs one unicast, no broadcast", cached: entry(macA, StateReachable),
			hosts: []host{{mac: macA}}, policy: BroadcastAuto, want: VerdictOK, owner: macA, unicast: 1},
		{name: "stale: silent cached MAC, new owner by broadcast", cached: entry(macA, StateStale),
			hosts: []host{{mac: macB}}, policy: BroadcastAuto, want: VerdictStale, owner: macB, unicast: 2, broadcast: 1},
		{name: "stale permanent entry", cached: entry(macA, StatePermanent),
			hosts: []host{{mac: macB}}, policy: BroadcastAuto, want: VerdictStale, owner: macB, unicast: 2, broadcast: 1},
		{name: "dead: two unicast and one broadcast attempt", cached: entry(macA, StateDelay),
			policy: BroadcastAuto, want: VerdictDead, unicast: 2, broadcast: 1},
		{name: "uncached: broadcast only", hosts: []host{{mac: macB}}, policy: BroadcastAuto,
			want: VerdictUncached, owner: macB, broadcast: 1},
		{name: "incomplete entry is uncached", cached: entry(nil, StateIncomplete), hosts: []host{{mac: macB}},
			policy: BroadcastAuto, want: VerdictUncached, owner: macB, broadcast: 1},
		{name: "no entry, nobody: dead after two broadcasts", policy: BroadcastAuto, want: VerdictDead, broadcast: 2},
		{name: "conflict found with always", cached: entry(macA, StateReachable),
			hosts: []host{{mac: macA}, {mac: macB, delay: 2 * time.Millisecond}}, policy: BroadcastAlways,
			want: VerdictConflict, unicast: 1, broadcast: 1},
		{name: "auto does not look for conflicts on a healthy entry", cached: entry(macA, StateReachable),
			hosts: []host{{mac: macA}, {mac: macB}}, policy: BroadcastAuto, want: VerdictOK, owner: macA, unicast: 1},
		{name: "conflict of two new owners", cached: entry(macA, StateStale),
			hosts: []host{{mac: macB}, {mac: macC}}, policy: BroadcastAuto, want: VerdictConflict, unicast: 2, broadcast: 1},
		{name: "always: ok with both requests", cached: entry(macA, StateReachable),
			hosts: []host{{mac: macA}}, policy: BroadcastAlways, want: VerdictOK, owner: macA, unicast: 1, broadcast: 1},
		{name: "never: stale looks dead, no broadcast", cached: entry(macA, StateStale),
			hosts: []host{{mac: macB}}, policy: BroadcastNever, want: VerdictDead, unicast: 2},
		{name: "never: uncached sends nothing", hosts: []host{{mac: macB}}, policy: BroadcastNever, want: VerdictDead},
		{name: "slow owner within the window", cached: entry(macA, StateReachable),
			hosts: []host{{mac: macA, delay: 15 * time.Millisecond}}, policy: BroadcastAuto, want: VerdictOK, owner: macA,
			unicast: 2, broadcast: 1, slow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var entries []Neighbor
			if tt.cached != nil {
				entries = append(entries, *tt.cached)
			}
			tbl := oneLAN(entries...)
			lan := &fakeLAN{}
			for _, h := range tt.hosts {
				lan.add(peerIP, h.mac, h.delay)
			}
			rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(tt.policy)})
			p := rep.Peers[0]
			if p.Verdict != tt.want || p.Owner.String() != tt.owner.String() {
				t.Errorf("verdict %s, owner %q (reason %q); want %s, owner %q", p.Verdict, p.Owner, p.Reason, tt.want, tt.owner)
			}
			uni := lan.count(func(f Frame) bool { return !isBroadcast(f) })
			bc := lan.count(isBroadcast)
			if tt.slow && uni == 1 && bc == 0 {
				// The answer was read before the unicast wait ended.
			} else if uni != tt.unicast || bc != tt.broadcast {
				t.Errorf("sent %d unicast, %d broadcast; want %d, %d", uni, bc, tt.unicast, tt.broadcast)
			}
			if rep.Stats.SentUnicast != uint64(uni) || rep.Stats.SentBroadcast != uint64(bc) {
				t.Errorf("Stats say %d unicast, %d broadcast; the LAN saw %d, %d",
					rep.Stats.SentUnicast, rep.Stats.SentBroadcast, uni, bc)
			}
			if p.Action != ActionNone {
				t.Errorf("verify-only action %s; want none", p.Action)
			}
			if got := rep.Summary.Count(tt.want); got != 1 || rep.Summary.Checked != 1 {
				t.Errorf("summary %+v; want one %s", rep.Summary, tt.want)
			}
		})
	}
}

func TestRequestFields(t *testing.T) {
	tbl := oneLAN(*entry(macA, StateStale))
	lan := &fakeLAN{}
	runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(BroadcastAuto)})
	ours := [6]byte{2, 0, 0, 0, 0xff, 2}
	for _, f := range lan.sent {
		if f.Op != opRequest || f.SenderMAC != ours || f.EtherSrc != ours ||
			f.SenderIP != netip.MustParseAddr("198.18.0.1") || f.TargetIP != netip.MustParseAddr(peerIP) {
			t.Errorf("request %+v: want op 1 from %x 198.18.0.1 for %s", f, ours, peerIP)
		}
		if isBroadcast(f) && f.TargetMAC != [6]byte{} {
			t.Errorf("broadcast request target MAC %x; want zero", f.TargetMAC)
		}
		if !isBroadcast(f) && (f.EtherDst != [6]byte(macA) || f.TargetMAC != [6]byte(macA)) {
			t.Errorf("unicast request to %x, target %x; want the cached %s", f.EtherDst, f.TargetMAC, macA)
		}
	}
}

func TestReplyDetails(t *testing.T) {
	tbl := oneLAN(*entry(macA, StateReachable))
	lan := &fakeLAN{}
	lan.add(peerIP, macA, 3*time.Millisecond)
	lan.add(peerIP, macA, 4*time.Millisecond) // a duplicate
	rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(BroadcastAlways)})
	p := rep.Peers[0]
	if len(p.Replies) != 1 {
		t.Fatalf("replies %+v; want one MAC", p.Replies)
	}
	r := p.Replies[0]
	if !r.Unicast || r.Count < 2 || r.RTT < 3*time.Millisecond || r.RTT > time.Second {
		t.Errorf("reply %+v; want unicast, count ≥ 2, RTT ≥ 3ms", r)
	}
}

func TestManyDeadPeersShareWindows(t *testing.T) {
	// 300 silent peers with a 50 ms window and 2 attempts: one peer after
	// another would take 30 s; sharing the windows takes about 100 ms.
	var entries []Neighbor
	var peers []string
	for i := 0; i < 300; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, 0, byte(i%250 + 2)})
		if i >= 250 {
			ip = netip.AddrFrom4([4]byte{198, 18, 1, byte(i - 248)})
		}
		peers = append(peers, ip.String())
		entries = append(entries, Neighbor{IP: ip, MAC: macA, State: StateStale})
	}
	tbl := oneLAN(entries...)
	tbl.routes = append(tbl.routes, Route{Dst: netip.MustParsePrefix("198.18.1.0/24"), Ifindex: 2})
	lan := &fakeLAN{}
	opts := fastOpts(BroadcastAuto)
	opts.Timeout = 50 * time.Millisecond
	start := time.Now()
	rep := runCheck(t, tbl, lan, peers, Options{Probe: opts})
	if rep.Summary.Dead != 300 {
		t.Fatalf("summary %+v; want 300 dead", rep.Summary)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("300 dead peers took %v; windows are not shared", d)
	}
}

func TestDeadline(t *testing.T) {
	tbl := oneLAN(*entry(macA, StateReachable))
	lan := &fakeLAN{}
	p := NewProber(lan.config())
	defer p.Close()
	c := Checker{Table: tbl, Topology: tbl, Prober: p}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	opts := fastOpts(BroadcastAuto)
	opts.Timeout = time.Second
	rep, err := c.Check(ctx, []netip.Addr{netip.MustParseAddr(peerIP)}, Options{Probe: opts})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	p0 := rep.Peers[0]
	if p0.Verdict != VerdictUnknown || !strings.Contains(p0.Reason, "deadline") {
		t.Errorf("verdict %s (%q); want unknown, deadline", p0.Verdict, p0.Reason)
	}
	if rep.Summary.Unknown != 1 {
		t.Errorf("summary %+v; want one unknown", rep.Summary)
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    func(n int) error
		want   Verdict
		reason string
	}{
		{"a full buffer is retried", func(n int) error {
			if n <= 2 {
				return syscallErr("ENOBUFS")
			}
			return nil
		}, VerdictOK, ""},
		{"a lasting error gives the peer up", func(int) error { return syscallErr("ENETDOWN") }, VerdictUnknown, "send"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := oneLAN(*entry(macA, StateReachable))
			lan := &fakeLAN{writeErr: tt.err}
			lan.add(peerIP, macA, 0)
			rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(BroadcastAuto)})
			p := rep.Peers[0]
			if p.Verdict != tt.want || !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("verdict %s (%q); want %s (%q)", p.Verdict, p.Reason, tt.want, tt.reason)
			}
		})
	}
}

func TestHostileFramesAreDroppedAndCounted(t *testing.T) {
	tbl := oneLAN(*entry(macA, StateStale))
	lan := &fakeLAN{}
	lan.add(peerIP, macB, 5*time.Millisecond)
	me := net.HardwareAddr{2, 0, 0, 0, 0xff, 2}
	peer, us := netip.MustParseAddr(peerIP), netip.MustParseAddr("198.18.0.1")
	lan.onSend = func(f Frame) {
		good := replyFrame(macC, peer, me, us)
		bcastSender := replyFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peer, me, us)
		mcastSender := replyFrame(net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, peer, me, us)
		zeroSender := replyFrame(net.HardwareAddr{0, 0, 0, 0, 0, 0}, peer, me, us)
		other := replyFrame(macC, netip.MustParseAddr("198.18.0.77"), me, us)
		badOp := append([]byte(nil), good...)
		badOp[21] = 9
		badHlen := append([]byte(nil), good...)
		badHlen[18] = 16
		for _, b := range [][]byte{good[:30], bcastSender, mcastSender, zeroSender, other, badOp, badHlen} {
			lan.inject(b)
		}
	}
	rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(BroadcastAuto)})
	p := rep.Peers[0]
	if p.Verdict != VerdictStale || p.Owner.String() != macB.String() {
		t.Fatalf("verdict %s owner %s; want stale, %s (replies %+v)", p.Verdict, p.Owner, macB, p.Replies)
	}
	d := rep.Stats.Dropped
	for _, c := range []struct {
		r    DropReason
		want uint64
	}{{DropShort, 1}, {DropSender, 3}, {DropUnsolicited, 1}, {DropOpcode, 1}, {DropFormat, 1}} {
		if d[c.r] < c.want {
			t.Errorf("dropped[%s] = %d; want ≥ %d", c.r, d[c.r], c.want)
		}
	}
}

func TestProbeOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		o    ProbeOptions
		ok   bool
	}{
		{"zero is defaults", ProbeOptions{}, true},
		{"negative timeout", ProbeOptions{Timeout: -1}, false},
		{"negative attempts", ProbeOptions{Attempts: -1}, false},
		{"bad policy", ProbeOptions{Broadcast: "sometimes"}, false},
	}
	for _, tt := range tests {
		got, err := tt.o.WithDefaults()
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v; want ok=%v", tt.name, err, tt.ok)
		}
		if tt.ok && (got.Timeout != DefaultTimeout || got.Attempts != DefaultAttempts || got.Broadcast != BroadcastAuto) {
			t.Errorf("%s: defaults %+v", tt.name, got)
		}
	}
}

// Options.Tap sees every frame of the check, sent and received, and
// none after Check returns: the owner's reply, and a second host's that
// arrives only after the check's last window, which the check's own
// prober, closed before Check returns, never hands on. The Checker's
// prober's own Tap sees the same frames (its configuration is the
// check's prober's).
func TestCheckTap(t *testing.T) {
	tbl := oneLAN(*entry(macA, StateStale))
	lan := &fakeLAN{}
	lan.add(peerIP, macB, 0)
	lan.add(peerIP, macC, 300*time.Millisecond) // after every window of fastOpts
	cfg := lan.config()
	var shared atomic.Int64
	cfg.Tap = func(TapEvent) { shared.Add(1) }
	p := NewProber(cfg)
	defer p.Close()
	var (
		mu                    sync.Mutex
		calls, sent, received int
		returned              bool
	)
	opts := Options{Probe: fastOpts(BroadcastAuto), Tap: func(e TapEvent) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if returned {
			t.Errorf("tap called after Check returned: %+v", e)
		}
		if e.Sent {
			sent++
		} else if e.Parsed != nil && e.Parsed.Op == opReply {
			received++
		}
	}}
	rep, err := (&Checker{Table: tbl, Topology: tbl, Prober: p}).Check(context.Background(), []netip.Addr{netip.MustParseAddr(peerIP)}, opts)
	mu.Lock()
	returned = true
	gotCalls, gotSent, gotReceived := calls, sent, received
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if want := int(rep.Stats.SentUnicast + rep.Stats.SentBroadcast); gotSent != want || want == 0 {
		t.Errorf("tap saw %d frames sent; the check sent %d", gotSent, want)
	}
	if gotReceived != 1 || rep.Peers[0].Verdict != VerdictStale {
		t.Errorf("tap saw %d replies, verdict %s; want 1 (the owner's; the late one comes after the check), stale",
			gotReceived, rep.Peers[0].Verdict)
	}
	if n := shared.Load(); n != int64(gotCalls) {
		t.Errorf("the Checker's prober's tap saw %d frames, Options.Tap %d; want the same", n, gotCalls)
	}
	time.Sleep(400 * time.Millisecond) // the late reply comes: it must find the check's sockets closed
}
