package arpprobe_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// The LAN of the real-kernel tests, 198.18.0.0/24 with the prober at .1:
//
//	.2   healthy host, cached correctly
//	.3   recycled: cached STALE with the dead instance's MAC
//	.4   recycled: pinned PERMANENT with the dead instance's MAC
//	.5   two hosts claim it (conflict); cached with the first one's MAC
//	.6   a host the prober has no entry for (uncached)
//	.9   cached, nobody behind it (dead)
//	198.19.7.7  not on any connected subnet (offlink)
const (
	ipHealthy   = "198.18.0.2"
	ipRecycled  = "198.18.0.3"
	ipPinned    = "198.18.0.4"
	ipConflict  = "198.18.0.5"
	ipUncached  = "198.18.0.6"
	ipDead      = "198.18.0.9"
	ipOfflink   = "198.19.7.7"
	deadMACText = "02:00:00:00:99:99"
)

var deadMAC, _ = net.ParseMAC(deadMACText)

type testLAN struct {
	*netns.LAN
	hosts map[string]*netns.Host
}

func newTestLAN(t *testing.T) *testLAN {
	t.Helper()
	netns.Require(t)
	lan, err := netns.NewLAN(context.Background(), netip.MustParsePrefix("198.18.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lan.Close(); err != nil {
			t.Errorf("close LAN: %v", err)
		}
	})
	tl := &testLAN{LAN: lan, hosts: map[string]*netns.Host{}}
	for _, ip := range []string{ipHealthy, ipRecycled, ipPinned, ipConflict, ipConflict, ipUncached} {
		h, err := lan.AddHost(context.Background(), netip.MustParseAddr(ip))
		if err != nil {
			t.Fatal(err)
		}
		if tl.hosts[ip] == nil {
			tl.hosts[ip] = h
		}
	}
	return tl
}

// seed puts an entry into the prober's table.
func (tl *testLAN) seed(t *testing.T, ip string, mac net.HardwareAddr, state int) {
	t.Helper()
	if err := tl.Prober.AddNeigh(netns.LANIface, netip.MustParseAddr(ip), mac, state, 0); err != nil {
		t.Fatalf("seed %s: %v", ip, err)
	}
}

// seedAll seeds the scenario's entries: the healthy, conflict and
// recycled ones as STALE, the pinned one PERMANENT, the dead one STALE.
func (tl *testLAN) seedAll(t *testing.T) {
	tl.seed(t, ipHealthy, netns.HostMAC(tl.hosts[ipHealthy].N), int(arpprobe.StateStale))
	tl.seed(t, ipRecycled, deadMAC, int(arpprobe.StateStale))
	tl.seed(t, ipPinned, deadMAC, int(arpprobe.StatePermanent))
	tl.seed(t, ipConflict, netns.HostMAC(tl.hosts[ipConflict].N), int(arpprobe.StateStale))
	tl.seed(t, ipDead, deadMAC, int(arpprobe.StateStale))
}

// check runs a Checker.Check inside the prober's namespace.
func (tl *testLAN) check(t *testing.T, ctx context.Context, peers []string, opts arpprobe.Options) *arpprobe.Report {
	t.Helper()
	var addrs []netip.Addr
	for _, p := range peers {
		addrs = append(addrs, netip.MustParseAddr(p))
	}
	var rep *arpprobe.Report
	err := tl.Prober.Do(func() error {
		k := arpprobe.NewKernel(tl.Prober.Handle())
		p := arpprobe.NewProber(arpprobe.ProberConfig{})
		defer p.Close()
		c := arpprobe.Checker{Table: k, Topology: k, Prober: p}
		var err error
		rep, err = c.Check(ctx, addrs, opts)
		return err
	})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

func (tl *testLAN) entry(t *testing.T, ip string) (mac string, state arpprobe.State) {
	t.Helper()
	n, err := tl.Prober.Neigh(netns.LANIface, netip.MustParseAddr(ip))
	if err != nil {
		t.Fatalf("read entry %s: %v", ip, err)
	}
	if n == nil {
		return "", 0
	}
	return n.HardwareAddr.String(), arpprobe.State(n.State)
}

func peerByIP(t *testing.T, rep *arpprobe.Report, ip string) arpprobe.Peer {
	t.Helper()
	for _, p := range rep.Peers {
		if p.IP.String() == ip {
			return p
		}
	}
	t.Fatalf("no peer %s in the report", ip)
	return arpprobe.Peer{}
}

func fast(policy arpprobe.BroadcastPolicy) arpprobe.ProbeOptions {
	return arpprobe.ProbeOptions{Timeout: 150 * time.Millisecond, Attempts: 2, Broadcast: policy}
}

func TestLANVerdicts(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	peers := []string{ipHealthy, ipRecycled, ipPinned, ipConflict, ipUncached, ipDead, ipOfflink}
	rep := tl.check(t, context.Background(), peers, arpprobe.Options{Probe: fast(arpprobe.BroadcastAlways)})
	want := map[string]struct {
		v     arpprobe.Verdict
		owner string
	}{
		ipHealthy:  {arpprobe.VerdictOK, netns.HostMAC(tl.hosts[ipHealthy].N).String()},
		ipRecycled: {arpprobe.VerdictStale, netns.HostMAC(tl.hosts[ipRecycled].N).String()},
		ipPinned:   {arpprobe.VerdictStale, netns.HostMAC(tl.hosts[ipPinned].N).String()},
		ipConflict: {arpprobe.VerdictConflict, ""},
		ipUncached: {arpprobe.VerdictUncached, netns.HostMAC(tl.hosts[ipUncached].N).String()},
		ipDead:     {arpprobe.VerdictDead, ""},
		ipOfflink:  {arpprobe.VerdictOfflink, ""},
	}
	for ip, w := range want {
		p := peerByIP(t, rep, ip)
		if p.Verdict != w.v || p.Owner.String() != w.owner {
			t.Errorf("%s: verdict %s owner %q (replies %+v, reason %q); want %s owner %q",
				ip, p.Verdict, p.Owner, p.Replies, p.Reason, w.v, w.owner)
		}
		if p.Action != arpprobe.ActionNone {
			t.Errorf("%s: verify-only action %s", ip, p.Action)
		}
	}
	if p := peerByIP(t, rep, ipConflict); len(p.Replies) != 2 {
		t.Errorf("conflict replies %+v; want the two hosts' MACs", p.Replies)
	}
	if rep.Summary.Checked != len(peers) {
		t.Errorf("summary %+v; want %d checked", rep.Summary, len(peers))
	}
}

func TestLANAutoHealthyCostsNoBroadcast(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	rep := tl.check(t, context.Background(), []string{ipHealthy, ipConflict}, arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto)})
	if rep.Stats.SentBroadcast != 0 || rep.Stats.SentUnicast != 2 {
		t.Errorf("sent %d unicast, %d broadcast; want 2, 0", rep.Stats.SentUnicast, rep.Stats.SentBroadcast)
	}
	for _, p := range rep.Peers {
		if p.Verdict != arpprobe.VerdictOK || len(p.Replies) != 1 || !p.Replies[0].Unicast {
			t.Errorf("%s: verdict %s replies %+v; want ok from one unicast reply", p.IP, p.Verdict, p.Replies)
		}
	}
}

func TestLANUnknownAfterDeadline(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	opts := arpprobe.Options{Probe: arpprobe.ProbeOptions{Timeout: time.Second}}
	rep := tl.check(t, ctx, []string{ipDead}, opts)
	if p := rep.Peers[0]; p.Verdict != arpprobe.VerdictUnknown || !strings.Contains(p.Reason, "deadline") {
		t.Errorf("verdict %s (%q); want unknown after the deadline", p.Verdict, p.Reason)
	}
}

func TestLANRepair(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	// Repair right after seeding: the owners' replies arrive within the
	// kernel's locktime (1 s) of the seeded update, so the kernel does not
	// heal the STALE entry itself and the repair must write it.
	opts := arpprobe.Options{
		Probe:  fast(arpprobe.BroadcastAuto),
		Repair: &arpprobe.RepairPolicy{DeleteDead: true, IncludePermanent: true},
	}
	peers := []string{ipHealthy, ipRecycled, ipPinned, ipConflict, ipDead}
	before := map[string]string{}
	for _, ip := range peers {
		before[ip], _ = tl.entry(t, ip)
	}
	rep := tl.check(t, context.Background(), peers, opts)
	owner := func(ip string) string { return netns.HostMAC(tl.hosts[ip].N).String() }
	tests := []struct {
		ip     string
		action arpprobe.Action
		mac    string
		state  arpprobe.State // 0: any
	}{
		{ipHealthy, arpprobe.ActionNone, owner(ipHealthy), 0},
		{ipRecycled, arpprobe.ActionReplaced, owner(ipRecycled), 0},
		{ipPinned, arpprobe.ActionReplaced, owner(ipPinned), arpprobe.StatePermanent},
		{ipConflict, arpprobe.ActionNone, owner(ipConflict), 0}, // auto: ok, the conflict stays unseen
		{ipDead, arpprobe.ActionDeleted, "", 0},
	}
	for _, tt := range tests {
		p := peerByIP(t, rep, tt.ip)
		mac, state := tl.entry(t, tt.ip)
		if p.Action != tt.action || mac != tt.mac || (tt.state != 0 && state != tt.state) {
			t.Errorf("%s (%s): action %s (%q), table %q %s; want %s, %q %v",
				tt.ip, p.Verdict, p.Action, p.Reason, mac, state, tt.action, tt.mac, tt.state)
		}
		after := ""
		if p.After != nil {
			after = p.After.MAC.String()
		}
		if after != mac {
			t.Errorf("%s: report's after %q; table %q", tt.ip, after, mac)
		}
		if tt.action == arpprobe.ActionNone && mac != before[tt.ip] {
			t.Errorf("%s: untouched entry changed from %q to %q", tt.ip, before[tt.ip], mac)
		}
	}
	if rep.Summary.Repaired != 2 {
		t.Errorf("summary %+v; want 2 repaired", rep.Summary)
	}
}

func TestLANRepairRefusesConflictAndPermanent(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	opts := arpprobe.Options{Probe: fast(arpprobe.BroadcastAlways), Repair: &arpprobe.RepairPolicy{}}
	rep := tl.check(t, context.Background(), []string{ipPinned, ipConflict}, opts)
	for _, ip := range []string{ipPinned, ipConflict} {
		p := peerByIP(t, rep, ip)
		if p.Action != arpprobe.ActionRefused || p.Reason == "" {
			t.Errorf("%s (%s): action %s (%q); want refused with a reason", ip, p.Verdict, p.Action, p.Reason)
		}
	}
	if mac, state := tl.entry(t, ipPinned); mac != deadMACText || state != arpprobe.StatePermanent {
		t.Errorf("pinned entry now %s %s; want untouched %s PERMANENT", mac, state, deadMACText)
	}
}

func TestLANDryRunChangesNothing(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	opts := arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto),
		Repair: &arpprobe.RepairPolicy{DryRun: true, DeleteDead: true, IncludePermanent: true}}
	rep := tl.check(t, context.Background(), []string{ipPinned, ipDead}, opts)
	for _, c := range []struct {
		ip     string
		action arpprobe.Action
	}{{ipPinned, arpprobe.ActionWouldReplace}, {ipDead, arpprobe.ActionWouldDelete}} {
		if p := peerByIP(t, rep, c.ip); p.Action != c.action {
			t.Errorf("%s: action %s; want %s", c.ip, p.Action, c.action)
		}
		if mac, _ := tl.entry(t, c.ip); mac != deadMACText {
			t.Errorf("%s: dry run changed the entry to %q", c.ip, mac)
		}
	}
}

// The kernel heals a wrong non-permanent entry by itself when it sees
// the owner's reply to our broadcast, once locktime (1 s) has passed since
// the entry's last update: the repair then finds it right and writes
// nothing.
func TestLANKernelHealsFromOurReply(t *testing.T) {
	tl := newTestLAN(t)
	tl.seed(t, ipRecycled, deadMAC, int(arpprobe.StateStale))
	time.Sleep(1200 * time.Millisecond) // past the kernel's locktime
	opts := arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto), Repair: &arpprobe.RepairPolicy{}}
	rep := tl.check(t, context.Background(), []string{ipRecycled}, opts)
	p := rep.Peers[0]
	want := netns.HostMAC(tl.hosts[ipRecycled].N).String()
	if p.Verdict != arpprobe.VerdictStale || p.Cached == nil || p.Cached.MAC.String() != deadMACText {
		t.Fatalf("verdict %s, cached %+v; want stale from the snapshot of %s", p.Verdict, p.Cached, deadMACText)
	}
	if p.Action != arpprobe.ActionHealed {
		t.Errorf("action %s (%q); want healed", p.Action, p.Reason)
	}
	if mac, _ := tl.entry(t, ipRecycled); mac != want {
		t.Errorf("entry %q; want the owner %s", mac, want)
	}
}

func TestLANWholeTable(t *testing.T) {
	tl := newTestLAN(t)
	tl.seedAll(t)
	rep := tl.check(t, context.Background(), nil, arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto)})
	got := map[string]arpprobe.Verdict{}
	for _, p := range rep.Peers {
		got[p.IP.String()] = p.Verdict
	}
	want := map[string]arpprobe.Verdict{ipHealthy: arpprobe.VerdictOK, ipRecycled: arpprobe.VerdictStale,
		ipPinned: arpprobe.VerdictStale, ipConflict: arpprobe.VerdictOK, ipDead: arpprobe.VerdictDead}
	for ip, v := range want {
		if got[ip] != v {
			t.Errorf("%s: %s; want %s (all: %v)", ip, got[ip], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("checked %v; want exactly the %d seeded entries", got, len(want))
	}
}
