package arpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/flood"
	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/vishvananda/netlink"
)

// Hostile LANs with real kernels: a host floods the prober with bogus
// ARP frames while it verifies and repairs; arping probes the same peers
// at the same time.
//
// The hostile LAN, 198.18.0.0/24, prober at .1 (netns.HostMAC(0)):
//
//	host 1  .2    healthy, cached with its MAC
//	host 2  .3    took over a recycled address, cached with a dead MAC
//	host 3  .5    claims .5,
//	host 4  .5    and so does this one (conflict); cached with a dead MAC
//	host 5  .6    not cached
//	        .9    cached with a dead MAC, nobody there
//	host 6  .250  the flooder
//	        .100  PERMANENT, and .101 STALE: entries nobody asked to check
const (
	hlHealthy  = "198.18.0.2"
	hlRecycled = "198.18.0.3"
	hlConflict = "198.18.0.5"
	hlUncached = "198.18.0.6"
	hlDead     = "198.18.0.9"
	hlFlooder  = "198.18.0.250"
	hlOther1   = "198.18.0.100"
	hlOther2   = "198.18.0.101"
)

var hlDeadMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x99}

type hostileLAN struct {
	*netns.LAN
	flooder *netns.Host
}

// newHostileLAN builds the LAN and seeds the prober's table. The kernel
// of the prober would itself believe a forged reply for an address it
// has an entry for, once the entry's locktime (1 s) has passed; that is
// the kernel's doing, not arpcheck's, so the prober's locktime is raised
// here and any change to the table in these tests is arpcheck's.
func newHostileLAN(t *testing.T) *hostileLAN {
	t.Helper()
	var addrs []netip.Addr
	for _, a := range []string{hlHealthy, hlRecycled, hlConflict, hlConflict, hlUncached, hlFlooder} {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), addrs...)
	if err := lan.Prober.Sysctl("net/ipv4/neigh/"+netns.LANIface+"/locktime", "100000"); err != nil {
		t.Fatal(err)
	}
	hl := &hostileLAN{LAN: lan, flooder: lan.Hosts[5]}
	hl.seed(t)
	return hl
}

func (hl *hostileLAN) seed(t *testing.T) {
	t.Helper()
	for _, e := range []struct {
		ip    string
		mac   net.HardwareAddr
		state State
	}{
		{hlHealthy, netns.HostMAC(1), StateStale},
		{hlRecycled, hlDeadMAC, StateStale},
		{hlConflict, hlDeadMAC, StateStale},
		{hlDead, hlDeadMAC, StateStale},
		{hlOther1, net.HardwareAddr{0x02, 0, 0, 0, 0x10, 0}, StatePermanent},
		{hlOther2, net.HardwareAddr{0x02, 0, 0, 0, 0x10, 1}, StateStale},
	} {
		if err := hl.Prober.AddNeigh(netns.LANIface, netip.MustParseAddr(e.ip), e.mac, int(e.state), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// table returns the prober's entries on lan0 as "ip mac" (state left out:
// the kernel changes states by itself).
func (hl *hostileLAN) table(t *testing.T) map[string]string {
	t.Helper()
	idx, err := hl.Prober.LinkIndex(netns.LANIface)
	if err != nil {
		t.Fatal(err)
	}
	var list []netlink.Neigh
	for try := 0; ; try++ {
		list, err = hl.Prober.Handle().NeighList(idx, netlink.FAMILY_V4)
		if err == nil || try == 5 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, n := range list {
		if n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 && len(n.HardwareAddr) == 0 {
			continue // an address being resolved holds no MAC
		}
		m[n.IP.String()] = n.HardwareAddr.String()
	}
	return m
}

// check runs a Checker.Check in the prober's namespace with cfg.
func (hl *hostileLAN) check(t *testing.T, ctx context.Context, cfg ProberConfig, peers []string, opts Options) (*Report, error) {
	t.Helper()
	var addrs []netip.Addr
	for _, p := range peers {
		addrs = append(addrs, netip.MustParseAddr(p))
	}
	var rep *Report
	var err error
	derr := hl.Prober.Do(func() error {
		k := NewKernel(hl.Prober.Handle())
		p := NewProber(cfg)
		defer p.Close()
		rep, err = (&Checker{Table: k, Topology: k, Prober: p}).Check(ctx, addrs, opts)
		return nil
	})
	if derr != nil {
		t.Fatal(derr)
	}
	return rep, err
}

// hostileFrames are the frames the flooder sends, addressed to the
// prober (unicast or broadcast), from the flooder's own MAC on the wire
// (a bridge drops frames from group MACs): every kind a hostile LAN can
// send, and the genuine owners' replies again and again.
func hostileFrames(flooderMAC net.HardwareAddr) [][]byte {
	us, bcast := netns.HostMAC(0), net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	reply := func(sha net.HardwareAddr, ip string) []byte {
		return craftARP(us, flooderMAC, 1, 0x0800, 6, 4, opReply, sha, ip, us, "198.18.0.1")
	}
	set := func(b []byte, off int, v ...byte) []byte {
		c := slices.Clone(b)
		copy(c[off:], v)
		return c
	}
	var out [][]byte
	for _, ip := range []string{hlHealthy, hlRecycled, hlConflict, hlUncached, hlDead} {
		// Senders no host has, claiming the checked addresses.
		for _, m := range []net.HardwareAddr{bcast, zero, {0x01, 0, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}} {
			out = append(out, reply(m, ip))
		}
		// Malformed claims from a unicast MAC: the kernel's filter drops
		// them, and so would the parser.
		bogus := reply(net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}, ip)
		out = append(out, bogus[:30], bogus[:41], set(bogus, 14, 0, 6), set(bogus, 16, 0x86, 0xdd),
			set(bogus, 18, 8), set(bogus, 19, 16), set(bogus, 20, 0, 3), set(bogus, 20, 0, 0),
			tag(bogus, etherTypeVLAN, 7), tag(bogus, etherTypeQinQ, 7))
	}
	// Replies for addresses nobody asked about, and gratuitous ARP for
	// addresses the prober has no entry for.
	for i := range 10 {
		ip := fmt.Sprintf("198.18.0.%d", 200+i)
		out = append(out, reply(flooderMAC, ip),
			craftARP(bcast, flooderMAC, 1, 0x0800, 6, 4, opRequest, flooderMAC, ip, zero, ip),
			craftARP(bcast, flooderMAC, 1, 0x0800, 6, 4, opReply, flooderMAC, ip, bcast, ip))
	}
	// Late and duplicate replies: the genuine owners, again and again.
	out = append(out, reply(netns.HostMAC(1), hlHealthy), reply(netns.HostMAC(2), hlRecycled),
		reply(netns.HostMAC(3), hlConflict), reply(netns.HostMAC(5), hlUncached))
	return out
}

// hostileFloodRate is the rate, in frames a second, of the hostile
// LAN's flood during checks that must come out exact: some fifty times
// what a busy LAN sends, and far below what the prober's reader absorbs
// even under the race detector on a loaded machine (its receive ring holds
// more than a second of it). The full-speed storm is the storm lab's
// (examples/labs/stormlab).
const hostileFloodRate = 20000

// startFlood floods from host h, rate frames a second (0: as fast as it
// can), until the test ends or Stop is called.
func startFlood(t *testing.T, h *netns.Host, frames [][]byte, rate int) *flood.Flooder {
	t.Helper()
	f, err := flood.Start(h.NS.Do, netns.HostIface, frames, rate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop() })
	return f
}

// hlWant is a peer's expected outcome in the hostile LAN.
type hlWant struct {
	verdict Verdict
	owner   string
	action  Action
}

func checkHostileReport(t *testing.T, rep *Report, want map[string]hlWant) {
	t.Helper()
	for _, p := range rep.Peers {
		w := want[p.IP.String()]
		if p.Verdict != w.verdict || p.Owner.String() != w.owner || p.Action != w.action {
			t.Errorf("%s: %s owner %q action %s (replies %+v, reason %q); want %s owner %q action %s",
				p.IP, p.Verdict, p.Owner, p.Action, p.Replies, p.Reason, w.verdict, w.owner, w.action)
		}
		for _, r := range p.Replies {
			if !unicastMAC([6]byte(r.MAC)) {
				t.Errorf("%s: reply from %s counted", p.IP, r.MAC)
			}
		}
	}
}

// checkDrops checks that the bogus frames were counted: those the
// socket filter lets through by reason; the malformed and tagged ones,
// and those from a sender MAC no host can have, never reach the socket.
func checkDrops(t *testing.T, st Stats) {
	t.Helper()
	d := st.Dropped
	if d[DropUnsolicited] == 0 {
		t.Errorf("dropped %v; want unsolicited replies counted", d)
	}
	for _, r := range []DropReason{DropShort, DropNotARP, DropFormat, DropOpcode, DropSender, DropVLAN} {
		if d[r] != 0 {
			t.Errorf("dropped[%s] = %d; want 0: the socket filter drops such frames in the kernel", r, d[r])
		}
	}
	if st.KernelDrops != 0 {
		t.Logf("the kernel dropped %d frames for want of buffer space", st.KernelDrops)
	}
	// As root the counting filter is in use, and counts what it rejects.
	if !st.RejectsCounted {
		t.Errorf("the kernel's rejections were not counted; want the counting (eBPF) filter as root")
	}
	for _, r := range []DropReason{DropShort, DropFormat, DropOpcode, DropSender, DropOtherHost} {
		if st.Rejected[r] == 0 {
			t.Errorf("rejected %v; want the flood's %s frames counted by the kernel's filter", st.Rejected, r)
		}
	}
}

var hlPeers = []string{hlHealthy, hlRecycled, hlConflict, hlUncached, hlDead}

func TestLANHostileFlood(t *testing.T) {
	hl := newHostileLAN(t)
	fmac, err := hl.flooder.MAC()
	if err != nil {
		t.Fatal(err)
	}
	fl := startFlood(t, hl.flooder, hostileFrames(fmac), hostileFloodRate)
	// Every kind of frame the flood sends reaches the prober's interface.
	witnessFlood(t, hl, fmac)
	probe := ProbeOptions{Timeout: 200 * time.Millisecond, Attempts: 2}
	owner := func(n int) string { return netns.HostMAC(n).String() }
	kinds := &kindTap{flooder: fmac}
	cfg := ProberConfig{Tap: kinds.tap}

	before := hl.table(t)
	t.Run("verify", func(t *testing.T) {
		kinds.reset()
		sent := fl.Sent()
		rep, err := hl.check(t, t.Context(), cfg, hlPeers, Options{Probe: probe})
		if err != nil {
			t.Fatal(err)
		}
		n := fl.Sent() - sent
		t.Logf("%d flood frames during the check (%.0f a second); stats %+v", n, float64(n)/rep.Duration.Seconds(), rep.Stats)
		checkHostileReport(t, rep, map[string]hlWant{
			hlHealthy:  {VerdictOK, owner(1), ActionNone},
			hlRecycled: {VerdictStale, owner(2), ActionNone},
			hlConflict: {VerdictConflict, "", ActionNone},
			hlUncached: {VerdictUncached, owner(5), ActionNone},
			hlDead:     {VerdictDead, "", ActionNone},
		})
		checkDrops(t, rep.Stats)
		kinds.check(t)
		if after := hl.table(t); !mapsEqual(before, after) {
			t.Errorf("verify changed the table:\nbefore %v\nafter  %v", before, after)
		}
	})
	t.Run("repair", func(t *testing.T) {
		kinds.reset()
		sent := fl.Sent()
		rep, err := hl.check(t, t.Context(), cfg, hlPeers,
			Options{Probe: probe, Repair: &RepairPolicy{DeleteDead: true}})
		if err != nil {
			t.Fatal(err)
		}
		n := fl.Sent() - sent
		t.Logf("%d flood frames during the repair (%.0f a second); stats %+v", n, float64(n)/rep.Duration.Seconds(), rep.Stats)
		checkHostileReport(t, rep, map[string]hlWant{
			hlHealthy:  {VerdictOK, owner(1), ActionNone},
			hlRecycled: {VerdictStale, owner(2), ActionReplaced},
			hlConflict: {VerdictConflict, "", ActionRefused},
			hlUncached: {VerdictUncached, owner(5), ActionNone},
			hlDead:     {VerdictDead, "", ActionDeleted},
		})
		checkDrops(t, rep.Stats)
		kinds.check(t)
		want := maps2(before)
		want[hlRecycled] = owner(2)
		delete(want, hlDead)
		if after := hl.table(t); !mapsEqual(want, after) {
			t.Errorf("table after the repair:\n got %v\nwant %v", after, want)
		}
	})
	n, rate, err := fl.Stop()
	if err != nil {
		t.Errorf("flooder: %v", err)
	}
	t.Logf("flooder sent %d frames, %.0f per second", n, rate)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func maps2(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestLANConcurrentArping: arping (iputils) probes the same peers from
// the same host while arpcheck verifies them, again and again. ARP has no
// transaction id, so each sees the other's replies; arpcheck counts a
// reply only from a MAC it asked (by unicast) or after its own broadcast,
// so its verdicts are the same as alone.
func TestLANConcurrentArping(t *testing.T) {
	arping := needTool(t, "arping")
	hl := newHostileLAN(t)
	owner := func(n int) string { return netns.HostMAC(n).String() }
	type run struct {
		cmd *exec.Cmd
		out *strings.Builder
	}
	var runs []run
	for _, ip := range hlPeers {
		for range 3 { // three per peer, a request a second each
			r := run{exec.Command(arping, "-I", netns.LANIface, "-c", "60", ip), &strings.Builder{}}
			r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
			if err := hl.Prober.Do(r.cmd.Start); err != nil { // started on a thread in the namespace: arping runs there
				t.Fatal(err)
			}
			runs = append(runs, r)
		}
	}
	t.Cleanup(func() {
		for _, r := range runs {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	var unsolicited uint64
	for _, policy := range []BroadcastPolicy{BroadcastAuto, BroadcastAlways} {
		t.Run(string(policy), func(t *testing.T) {
			for range 4 {
				rep, err := hl.check(t, t.Context(), ProberConfig{}, hlPeers,
					Options{Probe: ProbeOptions{Timeout: 200 * time.Millisecond, Attempts: 2, Broadcast: policy}})
				if err != nil {
					t.Fatal(err)
				}
				checkHostileReport(t, rep, map[string]hlWant{
					hlHealthy:  {VerdictOK, owner(1), ActionNone},
					hlRecycled: {VerdictStale, owner(2), ActionNone},
					hlConflict: {VerdictConflict, "", ActionNone},
					hlUncached: {VerdictUncached, owner(5), ActionNone},
					hlDead:     {VerdictDead, "", ActionNone},
				})
				unsolicited += rep.Stats.Dropped[DropUnsolicited]
			}
		})
	}
	// arping ran throughout, and was answered.
	for _, r := range runs {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			t.Errorf("%s ended before the checks did: %s", r.cmd, r.out)
			continue
		}
		r.cmd.Process.Signal(os.Interrupt)
		r.cmd.Wait()
		if !strings.Contains(r.cmd.Args[len(r.cmd.Args)-1], hlDead) && !strings.Contains(r.out.String(), "reply from") {
			t.Errorf("%s had no reply: %s", r.cmd, r.out)
		}
	}
	if unsolicited == 0 {
		t.Errorf("the checks saw none of arping's replies as unsolicited; they did not overlap")
	}
}

// TestLANReceiveBufferOverrun: with a receive ring of a few frames and a
// reader held up while a flood arrives, the kernel drops frames. The
// drops are reported; no verdict is wrong: each peer gets its true
// verdict (asked again after the drops) or is unknown, naming the drops,
// and only true verdicts are acted on.
func TestLANReceiveBufferOverrun(t *testing.T) {
	hl := newHostileLAN(t)
	fmac, err := hl.flooder.MAC()
	if err != nil {
		t.Fatal(err)
	}
	// Replies about addresses nobody asked about: they pass the socket
	// filter and fill the buffer.
	var frames [][]byte
	for i := range 20 {
		frames = append(frames, craftARP(netns.HostMAC(0), fmac, 1, 0x0800, 6, 4, opReply,
			fmac, fmt.Sprintf("198.18.0.%d", 200+i), netns.HostMAC(0), "198.18.0.1"))
	}
	fl := startFlood(t, hl.flooder, frames, 0)
	var once sync.Once
	cfg := ProberConfig{
		Listen: ListenConfig{ReadBuffer: 1}.Listen,
		Tap: func(ev TapEvent) {
			if ev.Sent {
				return
			}
			// Hold the reader up on its first frame until the flood has
			// sent a thousand more: far more than the buffer holds.
			once.Do(func() {
				for from := fl.Sent(); fl.Sent() < from+1000; {
					time.Sleep(time.Millisecond)
				}
			})
		},
	}
	before := hl.table(t)
	rep, err := hl.check(t, t.Context(), cfg, hlPeers,
		Options{Probe: ProbeOptions{Timeout: 200 * time.Millisecond, Attempts: 2}, Repair: &RepairPolicy{DeleteDead: true}})
	if err != nil {
		t.Fatal(err)
	}
	fl.Stop()
	if rep.Stats.KernelDrops == 0 {
		t.Fatalf("stats %+v: no kernel drops reported", rep.Stats)
	}
	owner := func(n int) string { return netns.HostMAC(n).String() }
	truth := map[string]hlWant{
		hlHealthy:  {VerdictOK, owner(1), ActionNone},
		hlRecycled: {VerdictStale, owner(2), ActionReplaced},
		hlConflict: {VerdictConflict, "", ActionRefused},
		hlUncached: {VerdictUncached, owner(5), ActionNone},
		hlDead:     {VerdictDead, "", ActionDeleted},
	}
	want := maps2(before)
	for _, p := range rep.Peers {
		w := truth[p.IP.String()]
		switch p.Verdict {
		case w.verdict:
			if p.Owner.String() != w.owner || p.Action != w.action {
				t.Errorf("%s: %s owner %q action %s; want owner %q action %s", p.IP, p.Verdict, p.Owner, p.Action, w.owner, w.action)
			}
			switch p.Action {
			case ActionReplaced:
				want[p.IP.String()] = w.owner
			case ActionDeleted:
				delete(want, p.IP.String())
			}
		case VerdictUnknown:
			if !strings.Contains(p.Reason, "kernel dropped") || p.Action != ActionNone {
				t.Errorf("%s: unknown, action %s, reason %q; want none, the kernel's drops named", p.IP, p.Action, p.Reason)
			}
		default:
			t.Errorf("%s: %s (replies %+v, reason %q); want %s or unknown", p.IP, p.Verdict, p.Replies, p.Reason, w.verdict)
		}
	}
	if after := hl.table(t); !mapsEqual(want, after) {
		t.Errorf("table after the repair:\n got %v\nwant %v", after, want)
	}
}

// TestLANInterfaceGoneMidRun takes the prober's interface down, or away,
// in the middle of a probe: the peers still waiting are unknown with the
// reason, at once, and nothing panics or hangs.
func TestLANInterfaceGoneMidRun(t *testing.T) {
	for _, tt := range []struct {
		name   string
		act    func(*netns.NS) error
		reason *regexp.Regexp
	}{
		{"down", func(ns *netns.NS) error { return ns.SetDown(netns.LANIface) },
			regexp.MustCompile(`^(send: )?arpprobe: (read|write) on lan0: interface is down: network is down$`)},
		// The socket's reader learns of the deletion as ENETDOWN; a write
		// fails with ENXIO.
		{"deleted", func(ns *netns.NS) error { return ns.DeleteLink(netns.LANIface) },
			regexp.MustCompile(`^(send: )?arpprobe: (read|write) on lan0: interface is (down: network is down|gone: no such device or address)$`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), netip.MustParseAddr(hlHealthy))
			for ip, mac := range map[string]net.HardwareAddr{hlHealthy: netns.HostMAC(1), hlDead: hlDeadMAC} {
				if err := lan.Prober.AddNeigh(netns.LANIface, netip.MustParseAddr(ip), mac, int(StateStale), 0); err != nil {
					t.Fatal(err)
				}
			}
			acted := make(chan error, 1)
			var once sync.Once
			cfg := ProberConfig{Tap: func(ev TapEvent) {
				if !ev.Sent && ev.Parsed != nil && ev.Parsed.SenderIP.String() == hlHealthy {
					// .2 has answered; .9 waits for a long window.
					once.Do(func() { go func() { acted <- tt.act(lan.Prober) }() })
				}
			}}
			hl := &hostileLAN{LAN: lan}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a guard against a hang
			defer cancel()
			done := make(chan struct{})
			var rep *Report
			var err error
			go func() {
				defer close(done)
				rep, err = hl.check(t, ctx, cfg, []string{hlHealthy, hlDead},
					Options{Probe: ProbeOptions{Timeout: 20 * time.Second, Attempts: 2}, Repair: &RepairPolicy{DeleteDead: true}})
			}()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("the check did not return after the interface went")
			}
			if aerr := <-acted; aerr != nil {
				t.Fatal(aerr)
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			ok, gone := rep.Peers[0], rep.Peers[1]
			t.Logf("%s: %s (%q)", gone.IP, gone.Verdict, gone.Reason)
			if ok.Verdict != VerdictOK {
				t.Errorf("%s: %s (%q); want ok, answered before", ok.IP, ok.Verdict, ok.Reason)
			}
			if gone.Verdict != VerdictUnknown || !tt.reason.MatchString(gone.Reason) || gone.Action != ActionNone {
				t.Errorf("%s: %s (%q), action %s; want unknown, reason matching %s, none", gone.IP, gone.Verdict, gone.Reason, gone.Action, tt.reason)
			}
			if ctx.Err() != nil {
				t.Errorf("the check ended by the guard's deadline, not by the interface's failure")
			}
		})
	}
}

// changingTable is a real Kernel whose table someone changes just before
// the re-read that precedes the repair.
type changingTable struct {
	*Kernel
	reads  int
	change func() error
}

func (c *changingTable) Neighbors(ctx context.Context) ([]Neighbor, error) {
	c.reads++
	if c.reads == 2 {
		if err := c.change(); err != nil {
			return nil, err
		}
	}
	return c.Kernel.Neighbors(ctx)
}

// TestLANTableChangesBeforeRepair changes entries of the real table
// between the snapshot and the repair: a changed entry is not
// overwritten, a deleted one is not re-added, one pinned meanwhile is
// left alone.
func TestLANTableChangesBeforeRepair(t *testing.T) {
	hl := newHostileLAN(t)
	third := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x77}
	if err := hl.Prober.AddNeigh(netns.LANIface, netip.MustParseAddr("198.18.0.4"), hlDeadMAC, int(StateStale), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := hl.AddHost(t.Context(), netip.MustParseAddr("198.18.0.4")); err != nil {
		t.Fatal(err)
	}
	var rep *Report
	var err error
	derr := hl.Prober.Do(func() error {
		k := &changingTable{Kernel: NewKernel(hl.Prober.Handle()), change: func() error {
			idx, err := hl.Prober.LinkIndex(netns.LANIface)
			if err != nil {
				return err
			}
			return errors.Join(
				hl.Prober.AddNeigh(netns.LANIface, netip.MustParseAddr(hlRecycled), third, int(StateReachable), 0),
				hl.Prober.Handle().NeighDel(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4,
					IP: netip.MustParseAddr(hlDead).AsSlice()}),
				hl.Prober.AddNeigh(netns.LANIface, netip.MustParseAddr("198.18.0.4"), hlDeadMAC, int(StatePermanent), 0))
		}}
		p := NewProber(ProberConfig{})
		defer p.Close()
		rep, err = (&Checker{Table: k, Topology: k.Kernel, Prober: p}).Check(t.Context(),
			[]netip.Addr{netip.MustParseAddr(hlRecycled), netip.MustParseAddr(hlDead), netip.MustParseAddr("198.18.0.4")},
			Options{Probe: ProbeOptions{Timeout: 200 * time.Millisecond, Attempts: 2}, Repair: &RepairPolicy{DeleteDead: true}})
		return nil
	})
	if derr != nil || err != nil {
		t.Fatal(derr, err)
	}
	want := []struct {
		verdict Verdict
		action  Action
		reason  string
		after   string
	}{
		{VerdictStale, ActionRefused, "changed since the snapshot (now 02:00:00:00:77:77)", third.String()},
		{VerdictDead, ActionNone, "gone since the snapshot; not re-added", ""},
		{VerdictStale, ActionRefused, "became PERMANENT", hlDeadMAC.String()},
	}
	table := hl.table(t)
	for i, p := range rep.Peers {
		w := want[i]
		if p.Verdict != w.verdict || p.Action != w.action || !strings.Contains(p.Reason, w.reason) || table[p.IP.String()] != w.after {
			t.Errorf("%s: %s, %s (%q), entry %q; want %s, %s (%q), entry %q", p.IP, p.Verdict, p.Action, p.Reason,
				table[p.IP.String()], w.verdict, w.action, w.reason, w.after)
		}
	}
}

// TestLANUnknownInterface asks for an interface the namespace does not
// have: a clear error, and no socket is opened.
func TestLANUnknownInterface(t *testing.T) {
	hl := newHostileLAN(t)
	opened := false
	cfg := ProberConfig{Listen: func(ifi *net.Interface) (FrameConn, error) {
		opened = true
		return ListenARP(ifi)
	}}
	for _, peers := range [][]string{nil, {hlHealthy}} {
		rep, err := hl.check(t, t.Context(), cfg, peers, Options{Interface: "nosuch", Repair: &RepairPolicy{}})
		if !errors.Is(err, ErrUnknownInterface) || !strings.Contains(err.Error(), `"nosuch"`) || rep != nil {
			t.Errorf("peers %v: %v, report %v; want ErrUnknownInterface naming nosuch", peers, err, rep)
		}
	}
	if opened {
		t.Error("a socket was opened")
	}
}
