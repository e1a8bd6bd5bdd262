package main

// End-to-end tests of faults on the wire: the interface going down or
// away in the middle of a run, and the socket's receive buffer overrun
// while arpcheck is held up; and the --verbose line that reports the
// kernel's drops.

import (
	"encoding/json"
	"maps"
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// waitProbing waits until the prober has put a frame on the LAN since
// frames were counted, as the switch counts them; it kills arpcheck and
// fails the test if none comes in a minute.
func waitProbing(t *testing.T, l *lab, frames uint64, cmd interface{ Kill() error }) {
	t.Helper()
	for began := time.Now(); l.framesSent() == frames; time.Sleep(5 * time.Millisecond) {
		if time.Since(began) > time.Minute {
			cmd.Kill()
			t.Fatal("arpcheck sent nothing in a minute")
		}
	}
}

// The interface set down, or deleted, while repair waits for replies:
// the peers not yet finished are unknown with the interface's error as
// the reason, at once (a window is 90 s, and arpcheck is killed after
// two minutes), nothing is repaired, exit 3.
func TestE2EInterfaceGoneMidRun(t *testing.T) {
	for _, tt := range []struct {
		name   string
		act    func(*netns.NS) error
		reason *regexp.Regexp
	}{
		{"down", func(ns *netns.NS) error { return ns.SetDown(netns.LANIface) },
			regexp.MustCompile(`arpprobe: (read|write) on lan0: interface is down: network is down$`)},
		{"deleted", func(ns *netns.NS) error { return ns.DeleteLink(netns.LANIface) },
			regexp.MustCompile(`arpprobe: (read|write) on lan0: interface is (down: network is down|gone: no such device or address)$`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, netlink.NUD_PERMANENT)
			frames := l.framesSent()
			cmd, stdout, stderr := start(t, l.Prober, args("repair", "--include-permanent", "--delete-dead",
				"--format", "json", "--timeout", "90s", staleIP.String(), deadIP.String()))
			waitProbing(t, l, frames, cmd.Process)
			if err := tt.act(l.Prober); err != nil {
				cmd.Process.Kill()
				t.Fatal(err)
			}
			o := finish(t, cmd, stdout, stderr)
			if o.status != exitUnknown || !strings.Contains(o.stderr, "2 of 2 peers could not be checked") {
				t.Errorf("want exit 3 and the unchecked peers counted\n%s", o)
			}
			r := parseJSON(t, o)
			for _, p := range r.Peers {
				t.Logf("%s: %s, %s (%q)", p.IP, p.Verdict, p.Action, p.Reason)
				if p.Verdict != "unknown" || !tt.reason.MatchString(p.Reason) || p.Action != "none" {
					t.Errorf("%s: %s, %s (%q); want unknown, reason matching %s, none", p.IP, p.Verdict, p.Action, p.Reason, tt.reason)
				}
			}
			if r.Summary["repaired"] != 0 || r.Summary["unknown"] != 2 {
				t.Errorf("summary %v; want 2 unknown, none repaired", r.Summary)
			}
		})
	}
}

// The receive ring overrun: arpcheck is stopped (SIGSTOP) in the middle
// of a repair while a host floods it with well-formed replies about other
// addresses, far more than its ring holds; the storm ends and arpcheck
// goes on. The kernel's drop counter is reported in the JSON report and
// by --verbose; the silences heard while frames were dropped prove
// nothing, so the peers are asked again, and the run comes out exact:
// ok, stale replaced, dead deleted, exit 0.
func TestE2EReceiveBufferOverrun(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	h, err := l.AddHost(t.Context(), netip.MustParseAddr("198.18.0.250"))
	if err != nil {
		t.Fatal(err)
	}
	fmac, err := h.MAC()
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for i := range 20 {
		frames = append(frames, arpFrame(netns.HostMAC(0), fmac, 1, 0x0800, 6, 4, 2,
			fmac, netip.AddrFrom4([4]byte{198, 18, 0, byte(200 + i)}), netns.HostMAC(0), lanPrefix.Addr()))
	}
	fl := flood(t, h, frames, 0)
	before := l.table()
	counted := l.framesSent()
	cmd, stdout, stderr := start(t, l.Prober, args("repair", "--include-permanent", "--delete-dead",
		"--format", "json", "--verbose", "--timeout", "1s", okIP.String(), staleIP.String(), deadIP.String()))
	waitProbing(t, l, counted, cmd.Process)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The receive ring (DefaultReadBuffer) holds some 14,500 such
	// frames; wait for several times as many, then let the run
	// go on after the storm.
	for from := fl.Sent(); fl.Sent() < from+100_000; {
		time.Sleep(10 * time.Millisecond)
	}
	fl.Stop()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	o := finish(t, cmd, stdout, stderr)
	if o.status != exitOK {
		t.Errorf("want exit 0: every peer checked again after the drops, stale replaced, dead deleted\n%.3000s", o)
	}
	var st runStats
	if err := json.Unmarshal([]byte(o.stdout), &st); err != nil {
		t.Fatal(err)
	}
	drops := st.Stats.Dropped["kernel"]
	if drops == 0 {
		t.Fatalf("JSON dropped %v; want the kernel's drops counted\n%.3000s", st.Stats.Dropped, o)
	}
	if m := regexp.MustCompile(`dropped: .*kernel (\d+)`).FindStringSubmatch(o.stderr); m == nil || m[1] != jsonNumber(drops) {
		t.Errorf("--verbose does not report the kernel's %d drops\n%.3000s", drops, o.stderr)
	}
	r := parseJSON(t, o)
	t.Logf("the kernel dropped %d frames", drops)
	want := map[string][2]string{okIP.String(): {"ok", "none"}, staleIP.String(): {"stale", "replaced"},
		deadIP.String(): {"dead", "deleted"}}
	for _, p := range r.Peers {
		t.Logf("%s: %s, %s (%q)", p.IP, p.Verdict, p.Action, p.Reason)
		if got := [2]string{p.Verdict, p.Action}; got != want[p.IP] {
			t.Errorf("%s: %s, %s (%q); want %s, %s", p.IP, p.Verdict, p.Action, p.Reason, want[p.IP][0], want[p.IP][1])
		}
	}
	wantTable := maps.Clone(before)
	wantTable[staleIP] = entry{MAC: netns.HostMAC(2).String(), State: wantTable[staleIP].State}
	delete(wantTable, deadIP)
	if after := l.table(); !sameMap(wantTable, after) {
		t.Errorf("table after the repair:\n got %v\nwant %v", after, wantTable)
	}
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// --verbose reports the frames the kernel dropped for want of buffer
// space next to those arpcheck dropped, and says none when there were
// none; then what the kernel's filter rejected, or that it could not
// count them.
func TestStatsLineKernelDrops(t *testing.T) {
	var st arpprobe.Stats
	tests := []struct {
		name string
		set  func()
		want string
	}{
		{"nothing", func() {}, "; dropped: none; rejected by the kernel's filter: not counted (the classic filter: no CAP_BPF)"},
		{"drops", func() { st.KernelDrops, st.Dropped[arpprobe.DropSender] = 12, 3 },
			"; dropped: sender 3, kernel 12; rejected by the kernel's filter: not counted (the classic filter: no CAP_BPF)"},
		{"counted, none", func() { st.RejectsCounted = true }, "; dropped: sender 3, kernel 12; rejected by the kernel's filter: none"},
		{"counted", func() { st.Rejected[arpprobe.DropShort], st.Rejected[arpprobe.DropOtherHost] = 5, 7 },
			"; dropped: sender 3, kernel 12; rejected by the kernel's filter: short 5, other-host 7"},
	}
	for _, tt := range tests {
		tt.set()
		if got := statsLine(&st); !strings.HasSuffix(got, tt.want) {
			t.Errorf("%s: statsLine = %q; want it to end with %q", tt.name, got, tt.want)
		}
	}
}

// A transmit queue that overflows: a token bucket on the prober's
// interface lets some 50 requests a second through and queues two more,
// so the kernel refuses most of a repair's requests with ENOBUFS. Each
// refused attempt is tried again a few times, then its peer is unknown
// with the error as the reason and its entry is left alone; the peers
// whose requests went out are dead and deleted (--delete-dead); exit 3.
func TestE2ESendQueueFull(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	var peers strings.Builder
	for i := range 120 {
		ip := netip.AddrFrom4([4]byte{198, 18, 0, byte(100 + i)})
		l.seed(ip, deadMAC, netlink.NUD_PERMANENT)
		peers.WriteString(ip.String() + "\n")
	}
	idx, err := l.Prober.LinkIndex(netns.LANIface)
	if err != nil {
		t.Fatal(err)
	}
	const rate, burst = 2000, 1600 // bytes a second, bytes at once
	tbf := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       rate, Buffer: netlink.Xmittime(rate, burst), Limit: 100,
	}
	if err := l.Prober.Handle().QdiscAdd(tbf); err != nil {
		t.Fatal(err)
	}
	before := l.table()
	o := arpcheck(t, l.Prober, invocation{args: []string{"repair", "--include-permanent", "--delete-dead",
		"--format", "json", "--timeout", "200ms", "--peers", "-"}, stdin: peers.String()})
	if o.status != exitUnknown {
		t.Errorf("want exit 3\n%.3000s", o)
	}
	r := parseJSON(t, o)
	after := l.table()
	unknown, deleted := 0, 0
	for _, p := range r.Peers {
		ip := netip.MustParseAddr(p.IP)
		_, present := after[ip]
		switch {
		case p.Verdict == "dead" && p.Action == "deleted" && !present:
			deleted++
		case p.Verdict == "unknown" && p.Action == "none" && present && after[ip].MAC == before[ip].MAC &&
			strings.Contains(p.Reason, "send: arpprobe: write on lan0: transmit queue full: no buffer space available"):
			unknown++
		default:
			t.Errorf("%s: %s, %s (%q), in the table: %v", ip, p.Verdict, p.Action, p.Reason, present)
		}
	}
	t.Logf("%d peers unknown for the full queue, %d dead and deleted", unknown, deleted)
	if unknown == 0 {
		t.Errorf("no request was refused: the test did not meet the fault")
	}
}

// A transmit queue that drains very slowly (a token bucket of 20 bytes a
// second, and room to queue everything): once the socket's send buffer
// is full, a write waits for the queue. The deadline, SIGINT and SIGTERM
// still end the run at once: the peers not checked are unknown, exit 3,
// the report printed. Before, the run waited in the write (for minutes
// here; for ever behind a hung queue), and the test's two-minute guard
// killed it.
func TestE2EStuckTransmitQueue(t *testing.T) {
	for _, tt := range []struct {
		name   string
		args   []string
		sig    syscall.Signal
		stderr string
		reason string
	}{
		{name: "deadline", args: []string{"--deadline", "2s"}, stderr: "could not be checked within the deadline",
			reason: "deadline exceeded"},
		{name: "SIGINT", sig: syscall.SIGINT, stderr: "interrupted", reason: "canceled"},
		{name: "SIGTERM", sig: syscall.SIGTERM, stderr: "interrupted", reason: "canceled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, netlink.NUD_PERMANENT)
			var peers strings.Builder
			const n = 240 // a unicast and a broadcast request each: more than the send buffer holds
			for i := range n {
				ip := netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})
				l.seed(ip, deadMAC, netlink.NUD_PERMANENT)
				peers.WriteString(ip.String() + "\n")
			}
			idx, err := l.Prober.LinkIndex(netns.LANIface)
			if err != nil {
				t.Fatal(err)
			}
			const rate, burst = 20, 1600
			tbf := &netlink.Tbf{
				QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
				Rate:       rate, Buffer: netlink.Xmittime(rate, burst), Limit: 1 << 20,
			}
			if err := l.Prober.Handle().QdiscAdd(tbf); err != nil {
				t.Fatal(err)
			}
			before, frames := l.table(), l.framesSent()
			cmd, stdout, stderr := start(t, l.Prober, invocation{args: append([]string{"repair", "--include-permanent",
				"--delete-dead", "--broadcast", "always", "--format", "json", "--peers", "-"}, tt.args...), stdin: peers.String()})
			if tt.sig != 0 {
				waitProbing(t, l, frames, cmd.Process)
				if err := cmd.Process.Signal(tt.sig); err != nil {
					t.Fatal(err)
				}
			}
			o := finish(t, cmd, stdout, stderr)
			if o.status != exitUnknown || !strings.Contains(o.stderr, tt.stderr) {
				t.Errorf("want exit 3 and %q\n%.3000s", tt.stderr, o)
			}
			r := parseJSON(t, o)
			if sent := r.Stats.SentUnicast + r.Stats.SentBroadcast; sent >= 2*n {
				t.Errorf("all %d requests were sent: the test did not meet the full queue", sent)
			}
			after := l.table()
			unknown := 0
			for _, p := range r.Peers {
				ip := netip.MustParseAddr(p.IP)
				e, present := after[ip]
				switch {
				case p.Verdict == "unknown" && p.Action == "none" && present && e == before[ip]:
					if strings.Contains(p.Reason, tt.reason) {
						unknown++
					}
				case p.Verdict == "dead" && p.Action == "deleted" && !present:
				default:
					t.Errorf("%s: %s, %s (%q), entry %v; want unknown and untouched, or dead and deleted", ip, p.Verdict, p.Action, p.Reason, e)
				}
			}
			if unknown == 0 {
				t.Errorf("no peer unknown for %q; summary %v", tt.reason, r.Summary)
			}
		})
	}
}
