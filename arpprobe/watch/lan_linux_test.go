package watch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// watchLAN runs a Watcher inside a LAN's prober namespace, with the real
// kernel, events and sockets.
type watchLAN struct {
	*netns.LAN
	w      *Watcher
	checks chan Check
	cancel context.CancelFunc
	done   chan error
}

// startWatch starts a Watcher in l's prober namespace with cfg (whose
// Table, Topology, Events and OnCheck it sets) and waits for the first
// sweep. The Watcher is made inside the namespace, then run from an
// ordinary goroutine: its sockets must land in the namespace anyway.
func startWatch(t *testing.T, l *netns.LAN, cfg Config) *watchLAN {
	t.Helper()
	return startWatchTraced(t, l, cfg, false)
}

// startWatchTraced is startWatch, with a NeighborTracer as Trace if
// traced.
func startWatchTraced(t *testing.T, l *netns.LAN, cfg Config, traced bool) *watchLAN {
	t.Helper()
	wl := &watchLAN{LAN: l, checks: make(chan Check, 64), done: make(chan error, 1)}
	cfg.OnCheck = func(c Check) { wl.checks <- c }
	var mon *NeighborMonitor
	err := l.Prober.Do(func() (err error) {
		k := arpprobe.NewKernel(l.Prober.Handle())
		if mon, err = OpenNeighborMonitor(); err != nil {
			return err
		}
		cfg.Table, cfg.Topology, cfg.Events = k, k, mon
		if traced {
			tr, err := OpenNeighborTracer()
			if err != nil {
				return err
			}
			t.Cleanup(func() { tr.Close() })
			cfg.Trace = tr
		}
		wl.w, err = New(cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wl.cancel = cancel
	go func() { wl.done <- wl.w.Run(ctx) }()
	t.Cleanup(func() {
		wl.stop(t)
		if err := mon.Close(); err != nil {
			t.Error(err)
		}
	})
	wl.waitCheck(t, "the first sweep", func(c Check) bool { return watchHasTrigger(c, "", CauseSweep) })
	return wl
}

// stop cancels Run and waits for it to return nil.
func (wl *watchLAN) stop(t *testing.T) {
	t.Helper()
	wl.cancel()
	select {
	case err, ok := <-wl.done:
		if ok && err != nil {
			t.Errorf("Run after cancel: %v; want nil", err)
		}
		if ok {
			close(wl.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel")
	}
}

func (wl *watchLAN) waitCheck(t *testing.T, what string, ok func(Check) bool) Check {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-wl.checks:
			if ok(c) {
				return c
			}
		case <-deadline:
			t.Fatalf("no check for %s within 10 s", what)
		}
	}
}

// watchHasTrigger reports whether c was asked for by cause, for ip ("": any).
func watchHasTrigger(c Check, ip string, cause Cause) bool {
	for _, tr := range c.Triggers {
		if tr.Cause == cause && (ip == "" || tr.IP.String() == ip) {
			return true
		}
	}
	return false
}

// watchSockets counts the namespace's packet sockets and its netlink
// sockets subscribed to neighbour events, from /proc/thread-self/net
// (which shows the calling thread's namespace; /proc/net the process's).
func watchSockets(t *testing.T, ns *netns.NS) (packet, neighEvents int) {
	t.Helper()
	err := ns.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/packet")
		if err != nil {
			return err
		}
		packet = strings.Count(string(b), "\n") - 1 // a header line
		f, err := os.Open("/proc/thread-self/net/netlink")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // header: sk Eth Pid Groups ...
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[1] != "0" { // NETLINK_ROUTE
				continue
			}
			groups, err := strconv.ParseUint(fields[3], 16, 32)
			if err == nil && groups&(1<<(3-1)) != 0 { // RTNLGRP_NEIGH
				neighEvents++
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return packet, neighEvents
}

// A STALE entry still holds a dead machine's MAC when a new machine
// takes the address without a word. Once traffic flows the entry goes to
// DELAY, which raises no kernel event: the watcher sees it and repairs
// the entry, long before the kernel would. It sees it by reading the
// table (poll), or at once through the neigh tracepoints, with Poll off:
// without the tracer, only the kernel's PROBE event 5 s later would ask
// for the check, so there the check must find the entry still in DELAY.
func TestWatchLANStaleInUse(t *testing.T) {
	for _, traced := range []bool{false, true} {
		name := map[bool]string{false: "poll", true: "tracepoints"}[traced]
		t.Run(name, func(t *testing.T) { testWatchLANStaleInUse(t, traced) })
	}
}

func testWatchLANStaleInUse(t *testing.T, traced bool) {
	ip := netip.MustParseAddr("198.18.0.2")
	l := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), ip)
	h := l.Hosts[0]
	// The old machine is gone; its successor is not plugged in yet.
	if err := l.Switch.SetDown(h.Port); err != nil {
		t.Fatal(err)
	}
	if err := l.Prober.AddNeigh(netns.LANIface, ip, deadMAC, int(arpprobe.StateStale), 0); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Check:    arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto), Repair: &arpprobe.RepairPolicy{}},
		Interval: time.Hour,
	}
	wantSource, wantCached := DelaySourcePoll, arpprobe.StateDelay|arpprobe.StateProbe
	if traced {
		cfg.Poll = -1
		wantSource, wantCached = DelaySourceTracepoints, arpprobe.StateDelay
	}
	wl := startWatchTraced(t, l, cfg, traced)
	if st := wl.w.Stats(); st.DelaySource != wantSource {
		t.Fatalf("delay source %q; want %q", st.DelaySource, wantSource)
	}
	// The new machine comes up silently (no gratuitous ARP).
	if err := l.Switch.SetUp(h.Port); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Switch.WaitUp(ctx, h.Port); err != nil {
		t.Fatal(err)
	}
	if mac, state := watchEntry(t, l, ip); mac != deadMACText || state != arpprobe.StateStale {
		t.Fatalf("before the traffic: entry %s %s; want %s STALE", mac, state, deadMACText)
	}
	watchSendUDP(t, l.Prober, ip) // to the dead MAC: the entry goes to DELAY

	c := wl.waitCheck(t, "the entry in use", func(c Check) bool { return watchHasTrigger(c, ip.String(), CauseState) })
	p := peerByIP(t, c.Report, ip.String())
	// Polled: DELAY, or PROBE if the check came more than
	// delay_first_probe_time (5 s) after the first use, on a loaded
	// machine.
	if p.Cached == nil || p.Cached.State&wantCached == 0 || p.Verdict != arpprobe.VerdictStale ||
		(p.Action != arpprobe.ActionReplaced && p.Action != arpprobe.ActionHealed) {
		t.Errorf("check of %s: cached %v, verdict %s, action %s (%s); want %s, stale, replaced or healed",
			ip, p.Cached, p.Verdict, p.Action, p.Reason, wantCached)
	}
	if mac, _ := watchEntry(t, l, ip); mac != netns.HostMAC(h.N).String() {
		t.Errorf("entry after the check: %s; want the new machine's %s", mac, netns.HostMAC(h.N))
	}
	st := wl.w.Stats()
	if st.Entries[arpprobe.VerdictOK] != 1 || len(st.Entries) != 1 {
		t.Errorf("entries by verdict %v; want 1 ok", st.Entries)
	}
	if traced && st.TraceEvents == 0 {
		t.Errorf("%d trace events; want the entry's", st.TraceEvents)
	}
	// The repair (or the kernel's own healing) was announced by an
	// event, which arrives in its own time.
	for deadline := time.Now().Add(5 * time.Second); wl.w.Stats().Events == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no neighbour event received within 5 s of the repair")
		}
	}
}

// An entry goes STALE while its owner still answers, as an idle entry
// does a reachable time after its last use. The watcher leaves it alone,
// sweep after sweep: a check would get the owner's reply, which makes the
// kernel mark the entry REACHABLE and trust it, without a word, for 15
// to 45 s. So when the address then moves silently and traffic starts,
// the entry goes to DELAY at once, and the watcher repairs it.
func TestWatchLANAgedStaleInUse(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.4")
	l := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), ip)
	h := l.Hosts[0]
	if err := l.Prober.AddNeigh(netns.LANIface, ip, netns.HostMAC(h.N), int(arpprobe.StateStale), 0); err != nil {
		t.Fatal(err)
	}
	wl := startWatch(t, l, Config{ // the first sweep finds it right
		Check:    arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto), Repair: &arpprobe.RepairPolicy{}},
		Interval: 100 * time.Millisecond,
	})
	// The entry ages: STALE again, with the owner there.
	if err := l.Prober.AddNeigh(netns.LANIface, ip, netns.HostMAC(h.N), int(arpprobe.StateStale), 0); err != nil {
		t.Fatal(err)
	}
	// Long enough for a check held back by Gap after the first
	// sweep's, and for several sweeps.
	aged, sweeps := time.Now(), wl.w.Stats().Sweeps
	for deadline := aged.Add(10 * time.Second); time.Since(aged) < 2*Gap || wl.w.Stats().Sweeps < sweeps+5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 5 sweeps within 10 s")
		}
	}
	if mac, state := watchEntry(t, l, ip); mac != netns.HostMAC(h.N).String() || state != arpprobe.StateStale {
		t.Fatalf("%s later: entry %s %s; want %s STALE (a check would have made it REACHABLE)",
			time.Since(aged).Round(time.Millisecond), mac, state, netns.HostMAC(h.N))
	}
	for len(wl.checks) > 0 {
		if c := <-wl.checks; slices.ContainsFunc(c.Triggers, func(tr Trigger) bool { return tr.IP == ip }) {
			t.Errorf("the idle STALE entry was checked: %v", c.Triggers)
		}
	}
	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x04}
	if err := h.SetMAC(newMAC); err != nil { // silently: arp_notify is off
		t.Fatal(err)
	}
	watchSendUDP(t, l.Prober, ip) // to the old MAC: the entry goes to DELAY
	c := wl.waitCheck(t, "the entry in use", func(c Check) bool { return watchHasTrigger(c, ip.String(), CauseState) })
	p := peerByIP(t, c.Report, ip.String())
	if p.Verdict != arpprobe.VerdictStale || (p.Action != arpprobe.ActionReplaced && p.Action != arpprobe.ActionHealed) {
		t.Errorf("check of %s: cached %v, verdict %s, action %s (%s); want stale, replaced or healed", ip, p.Cached, p.Verdict, p.Action, p.Reason)
	}
	if mac, _ := watchEntry(t, l, ip); mac != newMAC.String() {
		t.Errorf("entry after the check: %s; want the new MAC %s", mac, newMAC)
	}
}

// The new owner of a PERMANENT entry's address announces itself with a
// gratuitous ARP (arp_notify, as Linux does when a link comes up or its
// MAC changes). The entry raises no event and the kernel ignores the
// announcement; the watcher hears it and, with IncludePermanent,
// repairs the entry. Then Run stops cleanly and leaves no socket behind.
func TestWatchLANAnnouncedPermanent(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.3")
	l := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), ip)
	h := l.Hosts[0]
	if err := h.NS.Sysctl("net/ipv4/conf/"+netns.HostIface+"/arp_notify", "1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Prober.AddNeigh(netns.LANIface, ip, netns.HostMAC(h.N), int(arpprobe.StatePermanent), 0); err != nil {
		t.Fatal(err)
	}
	packetBefore, subsBefore := watchSockets(t, l.Prober)
	wl := startWatch(t, l, Config{
		Check:    arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto), Repair: &arpprobe.RepairPolicy{IncludePermanent: true}},
		Interval: time.Hour,
	})
	// Two packet sockets on lan0: the prober's, for ARP, and the one
	// that sees TCP SYNs (CauseIPv4).
	if packet, subs := watchSockets(t, l.Prober); packet != packetBefore+2 || subs != subsBefore+1 {
		t.Errorf("while watching: %d packet sockets, %d neighbour subscriptions; want %d, %d",
			packet, subs, packetBefore+2, subsBefore+1)
	}
	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x03}
	if err := h.SetMAC(newMAC); err != nil { // the kernel announces it
		t.Fatal(err)
	}
	c := wl.waitCheck(t, "the announcement", func(c Check) bool { return watchHasTrigger(c, ip.String(), CauseWire) })
	p := peerByIP(t, c.Report, ip.String())
	if p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced {
		t.Errorf("check of %s: verdict %s, action %s (%s); want stale, replaced", ip, p.Verdict, p.Action, p.Reason)
	}
	if mac, state := watchEntry(t, l, ip); mac != newMAC.String() || state != arpprobe.StatePermanent {
		t.Errorf("entry after the check: %s %s; want %s PERMANENT", mac, state, newMAC)
	}
	wl.stop(t)
	if packet, subs := watchSockets(t, l.Prober); packet != packetBefore || subs != subsBefore {
		t.Errorf("after Run returned: %d packet sockets, %d neighbour subscriptions; want %d, %d",
			packet, subs, packetBefore, subsBefore)
	}
}

// The new owner of a recycled address speaks first, and sends no ARP
// the prober sees: it knows the prober's MAC (a PERMANENT entry), takes
// the address with a new MAC without announcing it (arp_notify off, the
// kernel's default) and speaks. Its first frame, from an address of
// lan0's subnet with another MAC than the cached one, makes the watcher
// check and repair the PERMANENT entry, which no kernel event and no
// sweep (an hour away) would: a TCP SYN, which both IPv4 filters pass,
// or, with the eBPF filter (CAP_BPF, as here), a UDP datagram, which the
// classic SYN filter drops.
func TestWatchLANSpeaksFirst(t *testing.T) {
	proberIP := netip.MustParseAddr("198.18.0.1")
	for _, tt := range []struct {
		name  string
		speak func(t *testing.T, h *netns.Host)
	}{
		{"TCP SYN", func(t *testing.T, h *netns.Host) {
			// Its SYNs go unanswered (the prober answers the old MAC)
			// and are sent again until the entry is repaired.
			dialed := make(chan struct{})
			go func() {
				defer close(dialed)
				h.NS.Do(func() error {
					d := net.Dialer{Timeout: 5 * time.Second}
					if c, err := d.Dial("tcp4", netip.AddrPortFrom(proberIP, 9).String()); err == nil {
						c.Close()
					}
					return nil
				})
			}()
			t.Cleanup(func() { <-dialed })
		}},
		{"UDP", func(t *testing.T, h *netns.Host) { watchSendUDP(t, h.NS, proberIP) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr("198.18.0.5")
			l := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"), ip)
			h := l.Hosts[0]
			if err := l.Prober.AddNeigh(netns.LANIface, ip, netns.HostMAC(h.N), int(arpprobe.StatePermanent), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.NS.AddNeigh(netns.HostIface, proberIP, netns.HostMAC(0), int(arpprobe.StatePermanent), 0); err != nil {
				t.Fatal(err)
			}
			wl := startWatch(t, l, Config{ // the first sweep finds it right
				Check:    arpprobe.Options{Probe: fast(arpprobe.BroadcastAuto), Repair: &arpprobe.RepairPolicy{IncludePermanent: true}},
				Interval: time.Hour,
			})
			newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x05}
			if err := h.SetMAC(newMAC); err != nil { // silently
				t.Fatal(err)
			}
			tt.speak(t, h)
			c := wl.waitCheck(t, "the first frame", func(c Check) bool { return watchHasTrigger(c, ip.String(), CauseIPv4) })
			p := peerByIP(t, c.Report, ip.String())
			if p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced {
				t.Errorf("check of %s: verdict %s, action %s (%s); want stale, replaced", ip, p.Verdict, p.Action, p.Reason)
			}
			if mac, state := watchEntry(t, l, ip); mac != newMAC.String() || state != arpprobe.StatePermanent {
				t.Errorf("entry after the check: %s %s; want %s PERMANENT", mac, state, newMAC)
			}
		})
	}
}

func watchEntry(t *testing.T, l *netns.LAN, ip netip.Addr) (string, arpprobe.State) {
	t.Helper()
	n, err := l.Prober.Neigh(netns.LANIface, ip)
	if err != nil {
		t.Fatal(err)
	}
	if n == nil {
		return "", arpprobe.StateNone
	}
	return n.HardwareAddr.String(), arpprobe.State(n.State)
}

// watchSendUDP sends one datagram from a socket in ns to ip.
func watchSendUDP(t *testing.T, ns *netns.NS, ip netip.Addr) {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 9)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(bytes.Repeat([]byte("x"), 8)); err != nil {
		t.Fatal(fmt.Errorf("send to %s: %w", ip, err))
	}
}

// A NeighborMonitor opened inside a namespace reports that namespace's
// changes, whichever goroutine subscribes; when its reader falls behind
// and the kernel drops events, the subscription ends with ErrEventsLost.
func TestNeighborMonitor(t *testing.T) {
	ns := netns.NewT(t)
	if err := netns.Veth(ns, "a", ns, "b"); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetUp("a"); err != nil {
		t.Fatal(err)
	}
	ifindex, err := ns.LinkIndex("a")
	if err != nil {
		t.Fatal(err)
	}
	open := func(buf int) *NeighborMonitor {
		var m *NeighborMonitor
		if err := ns.Do(func() (err error) { m, err = OpenNeighborMonitor(); return err }); err != nil {
			t.Fatal(err)
		}
		m.ReceiveBuffer = buf
		t.Cleanup(func() { m.Close() })
		return m
	}
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(5 + i>>8), byte(i)}) }
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0x55, 0x01}
	next := func(ch <-chan NeighborEvent) NeighborEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed")
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
		return NeighborEvent{}
	}

	t.Run("events", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := open(0).SubscribeNeighbors(ctx) // from this goroutine, outside the namespace
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.AddNeigh("a", ip(2), mac, int(arpprobe.StatePermanent), 0); err != nil {
			t.Fatal(err)
		}
		ev := next(ch)
		want := fmt.Sprintf("%s %d %s %s deleted=false", ip(2), ifindex, mac, arpprobe.StatePermanent)
		if got := fmt.Sprintf("%s %d %s %s deleted=%v", ev.Neighbor.IP, ev.Neighbor.Ifindex, ev.Neighbor.MAC, ev.Neighbor.State, ev.Deleted); got != want || ev.Err != nil {
			t.Errorf("event %s (err %v); want %s", got, ev.Err, want)
		}
		n, err := ns.Neigh("a", ip(2))
		if err != nil || n == nil {
			t.Fatalf("entry %v, %v", n, err)
		}
		if err := ns.Handle().NeighDel(n); err != nil {
			t.Fatal(err)
		}
		// The kernel may tell of the entry as FAILED before it goes.
		ev = next(ch)
		for i := 0; i < 3 && !ev.Deleted; i++ {
			ev = next(ch)
		}
		if !ev.Deleted || ev.Neighbor.IP != ip(2) {
			t.Errorf("event %+v; want %s deleted", ev, ip(2))
		}
		cancel()
		for range ch { // closed once the socket is let go
		}
	})

	t.Run("lost", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := open(4096).SubscribeNeighbors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Nobody reads while far more events than the buffers hold are
		// raised. PERMANENT entries do not count towards gc_thresh.
		for i := 10; i < 2010; i++ {
			if err := ns.AddNeigh("a", ip(i), mac, int(arpprobe.StatePermanent), 0); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		var last NeighborEvent
		timeout := time.After(10 * time.Second)
		for done := false; !done; {
			select {
			case ev, ok := <-ch:
				if !ok {
					done = true
					break
				}
				n++
				last = ev
			case <-timeout:
				t.Fatalf("subscription still open 10 s after %d events", n)
			}
		}
		if !errors.Is(last.Err, ErrEventsLost) || !errors.Is(last.Err, syscall.ENOBUFS) {
			t.Errorf("last event of %d: err %v; want ErrEventsLost (ENOBUFS)", n, last.Err)
		}
		if n >= 2000 {
			t.Errorf("%d events of 2000 arrived; want some lost", n-1)
		}
	})
}
