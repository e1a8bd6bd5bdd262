package watch

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/netns"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/internal/fake"
)

// No amplification: a flood of spoofed gratuitous ARP from 65,536
// distinct addresses, some of them watched, and of spoofed TCP SYNs from
// 4,096 of them and every watched one, turns into no more broadcasts
// than --broadcast-rate allows and no more state than the watched
// entries.
//
// The LAN is 198.18.0.0/16, the prober at 198.18.0.1. Host 1 owns
// 198.18.0.2 and 64 addresses 198.18.4i.10, cached by the prober (STALE, host 1's
// MAC: the first sweep asks by unicast and costs no broadcast). Host 2
// floods a gratuitous request for every address of the /16, each with a
// MAC of its own: the kernel takes the spoofed MACs into the 64 watched
// entries (a gratuitous ARP overrides an entry), and the watcher sees
// the claims on the wire, so every watched address asks for a check
// about once a second (Gap), each wanting a broadcast once its
// cached MAC stays silent: tens of broadcasts a second wanted, 2
// allowed. (With a limiter per check, as before, the four checks at
// once sent about ten a second.) The kernel creates no entry for the other addresses
// (arp_accept 0, set explicitly: they would count against the host's
// gc_thresh).
//
// The bound holds at any speed: the shared limiter starts with a burst
// of BroadcastRate/4 and earns BroadcastRate a second, and the elapsed
// time is measured around the Watcher's whole life.
func TestWatchLANNoAmplification(t *testing.T) {
	const (
		broadcastRate = 2
		watchedN      = 64
		floodRate     = 20000
		floodFor      = 4 * time.Second
	)
	lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/16"),
		netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"))
	owner, flooder := lan.Hosts[0], lan.Hosts[1]
	for _, p := range []string{"net/ipv4/conf/all/arp_accept", "net/ipv4/conf/" + netns.LANIface + "/arp_accept"} {
		if err := lan.Prober.Sysctl(p, "0"); err != nil {
			t.Fatal(err)
		}
	}
	ownerMAC, err := owner.MAC()
	if err != nil {
		t.Fatal(err)
	}
	var watched []netip.Addr
	for i := range watchedN {
		// 1,024 addresses apart: the flood reaches them some 50 ms apart,
		// so each asks for a check of its own (beyond the coalescing
		// window), up to maxChecks at once.
		a := netip.AddrFrom4([4]byte{198, 18, byte(4 * i), 10})
		if err := owner.NS.AddAddr(netns.HostIface, netip.PrefixFrom(a, 16)); err != nil {
			t.Fatal(err)
		}
		watched = append(watched, a)
	}
	watched = append(watched, owner.Addr)
	for _, a := range watched {
		if err := lan.Prober.AddNeigh(netns.LANIface, a, ownerMAC, int(arpprobe.StateStale), 0); err != nil {
			t.Fatal(err)
		}
	}

	// The flood: a gratuitous request for every address of the /16, from
	// the flooder's own MAC on the wire (the bridge drops group MACs) and
	// a spoofed sender MAC of its own in the ARP payload.
	floodMAC, err := flooder.MAC()
	if err != nil {
		t.Fatal(err)
	}
	bcast, zero := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, net.HardwareAddr{0, 0, 0, 0, 0, 0}
	frames := make([][]byte, 0, 1<<16)
	for i := range 1 << 16 {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		sha := net.HardwareAddr{0x02, 0xee, 0, 0, byte(i >> 8), byte(i)}
		frames = append(frames, fake.Frame(1, floodMAC, sha, ip, bcast, zero, ip))
	}

	// Spoofed SYNs, one after every 16th request and one for each watched
	// address, each from a MAC of its own on the wire, other than the
	// request's (which the kernel takes into the entry): every watched
	// address shows a mismatch, which the IPv4 socket's filter passes
	// (the eBPF one at most once a second per entry).
	proberMAC, err := lan.Prober.LinkMAC(netns.LANIface)
	if err != nil {
		t.Fatal(err)
	}
	syn := func(a netip.Addr, n int) []byte {
		b := synFrame(a, 6, 0x02, 0)
		copy(b[0:6], proberMAC)
		copy(b[6:12], net.HardwareAddr{0x02, 0xdd, 0, 0, byte(n >> 8), byte(n)})
		return b
	}
	withSYNs := make([][]byte, 0, len(frames)+len(frames)/16+len(watched))
	for i, a := range watched { // first: the flood must reach them early
		withSYNs = append(withSYNs, syn(a, 1<<15+i))
	}
	for i, f := range frames {
		withSYNs = append(withSYNs, f)
		if i%16 == 0 {
			withSYNs = append(withSYNs, syn(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), i))
		}
	}
	frames = withSYNs

	var broadcasts atomic.Int64
	ipv4Sightings := &countingHandler{msg: "an IPv4 frame from another MAC than the cached one"}
	checks := make(chan Check, 1024)
	cfg := Config{
		Logger:   slog.New(ipv4Sightings),
		Interval: -1, // the first sweep only: every later check is the flood's
		Check:    arpprobe.Options{Probe: arpprobe.ProbeOptions{BroadcastRate: broadcastRate}},
		Prober: arpprobe.ProberConfig{Tap: func(e arpprobe.TapEvent) {
			if e.Sent && len(e.Frame) >= 6 && net.HardwareAddr(e.Frame[:6]).String() == bcast.String() {
				broadcasts.Add(1)
			}
		}},
		OnCheck: func(c Check) {
			select {
			case checks <- c:
			default:
			}
		},
	}
	start := time.Now()
	var w *Watcher
	err = lan.Prober.Do(func() (err error) {
		k := arpprobe.NewKernel(lan.Prober.Handle())
		mon, err := OpenNeighborMonitor()
		if err != nil {
			return err
		}
		t.Cleanup(func() { mon.Close() })
		cfg.Table, cfg.Topology, cfg.Events = k, k, mon
		w, err = New(cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-checks: // the first sweep
	case <-time.After(10 * time.Second):
		t.Fatal("no first sweep within 10 s")
	}

	f := startFlood(t, flooder, frames, floodRate)
	time.Sleep(floodFor)
	f.Stop()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel")
	}
	elapsed := time.Since(start)

	st := w.Stats()
	got := broadcasts.Load()
	burst := max(1, broadcastRate/4)
	bound := int64(broadcastRate*elapsed.Seconds()) + int64(burst)
	t.Logf("flood: %d frames; watcher: %d broadcasts in %v (bound %d), %d sightings (%d IPv4, %d dropped), %d events, checks %v; peak %d addresses, %d triggers",
		f.Sent(), got, elapsed.Round(time.Millisecond), bound, st.Sightings, ipv4Sightings.n.Load(), st.SightingsDropped, st.Events, st.Checks,
		w.peakSlots.Load(), w.peakPending.Load())
	if got > bound {
		t.Errorf("%d broadcasts in %v; want at most %d (%d/s × elapsed + burst %d)", got, elapsed, bound, broadcastRate, burst)
	}
	if st.Frames.SentBroadcast > uint64(got) {
		t.Errorf("Stats counts %d broadcasts; the tap saw %d", st.Frames.SentBroadcast, got)
	}
	// The flood did reach the watcher and its checks did broadcast (the
	// first sweep sends none: every cached MAC answers its unicast):
	// otherwise the bound proves nothing.
	if st.Events+st.Sightings == 0 || got == 0 || ipv4Sightings.n.Load() == 0 {
		t.Errorf("the flood raised no event or sighting (%d, %d), no broadcast (%d) or no IPv4 sighting (%d): the test proves nothing",
			st.Events, st.Sightings, got, ipv4Sightings.n.Load())
	}

	// State: only watched addresses are known, each with a bounded
	// number of triggers (5 causes × maxPerCause).
	entries, err := arpprobe.NewKernel(lan.Prober.Handle()).Neighbors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	maxAddrs := int64(len(watched) + 4) // the hosts' own addresses may appear
	if n := int64(len(entries)); n > maxAddrs {
		t.Errorf("the prober's table holds %d entries after the flood; want at most %d (no entry per spoofed address)", n, maxAddrs)
	}
	w.mu.RLock()
	cached := len(w.cache)
	w.mu.RUnlock()
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"cached entries", int64(cached), maxAddrs},
		{"addresses in the scheduler at once", w.peakSlots.Load(), maxAddrs},
		{"triggers pending at once", w.peakPending.Load(), maxAddrs * int64(len(Causes)*maxPerCause)},
	} {
		if c.got > c.want {
			t.Errorf("%s: %d; want at most %d", c.what, c.got, c.want)
		}
	}
}

// countingHandler is a slog.Handler, enabled at every level, that counts
// the records with message msg.
type countingHandler struct {
	msg string
	n   atomic.Int64
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
