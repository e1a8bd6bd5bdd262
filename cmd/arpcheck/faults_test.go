package main

// End-to-end tests of arpcheck on hostile LANs and under faults: a flood
// of bogus frames, SIGINT and SIGTERM in the middle of a repair, --pcap
// captures read back by pcapgo and tshark, least privilege with file
// capabilities, and what the binary does to the system (sockets,
// programs, files), traced with strace.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/arpprobe"
	floodpkg "github.com/arpcheck/arpcheck/internal/flood"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// needProgram returns the path of a program a test needs. CI installs
// them, so there a missing one fails the test; elsewhere it skips it.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// arpFrame builds an unpadded ARP frame field by field, so that any field
// may be wrong.
func arpFrame(dst, src net.HardwareAddr, htype, ptype uint16, hlen, plen uint8, op uint16,
	sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := append(append(slices.Clone(dst), src...), 0x08, 0x06)
	b = append(b, byte(htype>>8), byte(htype), byte(ptype>>8), byte(ptype), hlen, plen, byte(op>>8), byte(op))
	s4, t4 := spa.As4(), tpa.As4()
	b = append(append(append(append(b, sha...), s4[:]...), tha...), t4[:]...)
	return b
}

// floodFrames are bogus frames for the prober of a lab, sent from mac:
// claims of the lab's addresses from MACs no host has, malformed and
// tagged frames, replies and gratuitous ARP for other addresses, and the
// genuine owners' replies again and again.
func floodFrames(mac net.HardwareAddr) [][]byte {
	us, bcast, zero := netns.HostMAC(0), net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make(net.HardwareAddr, 6)
	prober := lanPrefix.Addr()
	reply := func(sha net.HardwareAddr, ip netip.Addr) []byte {
		return arpFrame(us, mac, 1, 0x0800, 6, 4, 2, sha, ip, us, prober)
	}
	set := func(b []byte, off int, v ...byte) []byte {
		c := slices.Clone(b)
		copy(c[off:], v)
		return c
	}
	tagged := func(b []byte, vid uint16) []byte {
		return append(append(slices.Clone(b[:12]), 0x81, 0x00, byte(vid>>8), byte(vid)), b[12:]...)
	}
	var out [][]byte
	for _, ip := range []netip.Addr{okIP, staleIP, deadIP, conflictIP, uncachedIP} {
		for _, m := range []net.HardwareAddr{bcast, zero, {0x01, 0, 0x5e, 0, 0, 1}} {
			out = append(out, reply(m, ip))
		}
		b := reply(net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}, ip)
		out = append(out, b[:30], set(b, 14, 0, 6), set(b, 18, 8), set(b, 20, 0, 3), tagged(b, 7))
	}
	for i := range 8 {
		ip := netip.AddrFrom4([4]byte{198, 18, 0, byte(200 + i)})
		out = append(out, reply(mac, ip),
			arpFrame(bcast, mac, 1, 0x0800, 6, 4, 1, mac, ip, zero, ip),
			arpFrame(bcast, mac, 1, 0x0800, 6, 4, 2, mac, ip, bcast, ip))
	}
	return append(out, reply(netns.HostMAC(1), okIP), reply(netns.HostMAC(2), staleIP),
		reply(netns.HostMAC(3), conflictIP), reply(netns.HostMAC(5), uncachedIP))
}

// floodRate is the rate, in frames a second, of the floods during runs
// that must come out exact: far below what arpcheck's reader absorbs even
// under the race detector on a loaded machine (see arpprobe's
// hostileFloodRate). The full-speed storm is examples/labs/stormlab's.
const floodRate = 20000

// flood sends frames from h, rate frames a second (0: as fast as it
// can), until the test ends or the flooder is stopped.
func flood(t *testing.T, h *netns.Host, frames [][]byte, rate int) *floodpkg.Flooder {
	t.Helper()
	f, err := floodpkg.Start(h.NS.Do, netns.HostIface, frames, rate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n, perSecond, err := f.Stop()
		if err != nil {
			t.Errorf("flooder: %v", err)
		}
		t.Logf("flooder sent %d frames, %.0f per second", n, perSecond)
	})
	return f
}

// runStats is the part of the JSON report about frames.
type runStats struct {
	Stats struct {
		Received uint64            `json:"received"`
		Dropped  map[string]uint64 `json:"dropped"`
	} `json:"stats"`
}

// The binary, verifying and repairing the lab while a host floods it with
// bogus frames: exact verdicts and actions, the bogus frames counted in
// the JSON report and by --verbose, nothing written but the repairs.
func TestE2EHostileFlood(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	// The kernel of the prober would believe forged replies for its own
	// entries once their locktime has passed: that is the kernel's doing,
	// so the test raises it and every change of the table is arpcheck's.
	if err := l.Prober.Sysctl("net/ipv4/neigh/"+netns.LANIface+"/locktime", "100000"); err != nil {
		t.Fatal(err)
	}
	h, err := l.AddHost(t.Context(), netip.MustParseAddr("198.18.0.250"))
	if err != nil {
		t.Fatal(err)
	}
	fmac, err := h.MAC()
	if err != nil {
		t.Fatal(err)
	}
	fl := flood(t, h, floodFrames(fmac), floodRate)
	peers := []string{okIP.String(), staleIP.String(), deadIP.String(), conflictIP.String(), uncachedIP.String()}
	owner := func(n int) string { return netns.HostMAC(n).String() }
	type want struct{ verdict, owner, action string }
	tests := []struct {
		name   string
		args   []string
		status int
		want   map[netip.Addr]want
		table  func(before map[netip.Addr]entry) map[netip.Addr]entry
	}{
		{name: "verify", args: []string{"verify", "--broadcast", "always"}, status: exitCritical,
			want: map[netip.Addr]want{okIP: {"ok", owner(1), "none"}, staleIP: {"stale", owner(2), "none"},
				deadIP: {"dead", "", "none"}, conflictIP: {"conflict", "", "none"}, uncachedIP: {"uncached", owner(5), "none"}},
			table: func(b map[netip.Addr]entry) map[netip.Addr]entry { return b }},
		{name: "repair", args: []string{"repair", "--delete-dead"}, status: exitOK,
			want: map[netip.Addr]want{okIP: {"ok", owner(1), "none"}, staleIP: {"stale", owner(2), "replaced"},
				deadIP: {"dead", "", "deleted"}, conflictIP: {"ok", owner(3), "none"}, uncachedIP: {"uncached", owner(5), "none"}},
			table: func(b map[netip.Addr]entry) map[netip.Addr]entry {
				w := map[netip.Addr]entry{}
				for ip, e := range b {
					w[ip] = e
				}
				w[staleIP] = entry{MAC: owner(2)}
				delete(w, deadIP)
				return w
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := macsOnly(l.table())
			from := fl.Sent()
			o := arpcheck(t, l.Prober, args(append(append(tt.args, "--format", "json", "--verbose", "--timeout", "200ms"), peers...)...))
			t.Logf("%d flood frames during the run", fl.Sent()-from)
			if o.status != tt.status {
				t.Errorf("want exit %d\n%s", tt.status, o)
			}
			r := parseJSON(t, o)
			for ip, w := range tt.want {
				p := r.Peers[r.peer(t, ip)]
				got := want{p.Verdict, "", p.Action}
				if p.Owner != nil {
					got.owner = *p.Owner
				}
				if got != w {
					t.Errorf("%s: %+v (replies %v, reason %q); want %+v", ip, got, macs(r, r.peer(t, ip)), p.Reason, w)
				}
			}
			var st runStats
			if err := json.Unmarshal([]byte(o.stdout), &st); err != nil {
				t.Fatal(err)
			}
			// Claims from group or zero MACs never pass the socket
			// filter; the replies nobody asked for are counted.
			if st.Stats.Dropped["sender"] != 0 || st.Stats.Dropped["unsolicited"] == 0 {
				t.Errorf("JSON dropped %v; want no bogus senders (the kernel's filter drops them), unsolicited replies counted", st.Stats.Dropped)
			}
			// As root the kernel's filter counts what it rejects.
			var rej struct {
				Stats struct {
					Rejected map[string]uint64 `json:"rejected"`
				} `json:"stats"`
			}
			if err := json.Unmarshal([]byte(o.stdout), &rej); err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{"short", "format", "opcode", "sender", "other-host"} {
				if rej.Stats.Rejected[r] == 0 {
					t.Errorf("JSON rejected %v; want the flood's %s frames counted by the kernel's filter", rej.Stats.Rejected, r)
				}
			}
			if !regexp.MustCompile(`dropped: .*unsolicited \d+`).MatchString(o.stderr) {
				t.Errorf("--verbose does not count the dropped frames\n%s", o)
			}
			if after, want := macsOnly(l.table()), tt.table(before); !sameMap(after, want) {
				t.Errorf("table after %s:\n got %v\nwant %v", tt.name, after, want)
			}
		})
	}
}

// macsOnly keeps the MACs of a table: the kernel changes states itself.
func macsOnly(m map[netip.Addr]entry) map[netip.Addr]entry {
	out := make(map[netip.Addr]entry, len(m))
	for ip, e := range m {
		out[ip] = entry{MAC: e.MAC}
	}
	return out
}

func sameMap[K comparable, V comparable](a, b map[K]V) bool {
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

// SIGINT or SIGTERM in the middle of a repair: the write in progress is
// finished, no other is started, the report says what was done and what
// was not, and the exit status is 3. The repair deletes the entries of
// many dead peers; the test stops arpcheck (SIGSTOP) at the kernel's
// first deletion event, sends the signal and lets it go on (SIGCONT).
func TestE2EInterruptDuringRepair(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/21"))
			// PERMANENT entries: they do not count towards the host's
			// garbage-collection thresholds.
			var peers bytes.Buffer
			const n = 1536
			for i := range n {
				ip := netip.AddrFrom4([4]byte{198, 18, byte(1 + i/256), byte(i % 256)})
				if err := lan.Prober.AddNeigh(netns.LANIface, ip, deadMAC, netlink.NUD_PERMANENT, 0); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintln(&peers, ip)
			}
			events := make(chan netlink.NeighUpdate, 4096)
			stopEvents := make(chan struct{})
			defer close(stopEvents)
			if err := lan.Prober.Do(func() error { return netlink.NeighSubscribe(events, stopEvents) }); err != nil {
				t.Fatal(err)
			}
			cmd, stdout, stderr := start(t, lan.Prober, invocation{
				args: []string{"repair", "--delete-dead", "--include-permanent", "--broadcast", "never",
					"--attempts", "1", "--timeout", "300ms", "--format", "json", "--peers", "-"},
				stdin: peers.String()})
			deadline := time.After(time.Minute)
		wait:
			for {
				select {
				case ev := <-events:
					if ev.Type == unix.RTM_DELNEIGH {
						break wait
					}
				case <-deadline:
					cmd.Process.Kill()
					t.Fatalf("no entry deleted in a minute\n%s", finish(t, cmd, stdout, stderr))
				}
			}
			for _, s := range []syscall.Signal{syscall.SIGSTOP, sig, syscall.SIGCONT} {
				if err := cmd.Process.Signal(s); err != nil {
					t.Fatal(err)
				}
			}
			o := finish(t, cmd, stdout, stderr)
			if o.status != exitUnknown || !strings.Contains(o.stderr, "interrupted") {
				t.Errorf("want exit 3 and a word about the interruption\n%.2000s", o)
			}
			r := parseJSON(t, o)
			table := map[netip.Addr]entry{}
			for ip, e := range tableOf(t, lan) {
				table[ip] = e
			}
			deleted, left := 0, 0
			for _, p := range r.Peers {
				ip := netip.MustParseAddr(p.IP)
				_, present := table[ip]
				switch {
				case p.Verdict == "dead" && p.Action == "deleted" && !present:
					deleted++
				case p.Verdict == "dead" && p.Action == "none" && strings.Contains(p.Reason, "not repaired") && present:
					left++
				default:
					t.Errorf("%s: %s, %s (%q), in the table: %v", ip, p.Verdict, p.Action, p.Reason, present)
				}
			}
			if deleted == 0 || left == 0 || deleted+left != n {
				t.Errorf("%d deleted and %d left of %d; want some of each, agreeing with the table", deleted, left, n)
			}
			t.Logf("%d deleted before the signal took effect, %d left", deleted, left)
		})
	}
}

// tableOf returns the prober's entries on the LAN by address.
func tableOf(t *testing.T, lan *netns.LAN) map[netip.Addr]entry {
	t.Helper()
	return (&lab{LAN: lan, t: t}).table()
}

// --pcap records every frame a run sends and receives: the requests the
// JSON report counts, the replies, in a file pcapgo, tshark and tcpdump
// read.
func TestE2EPcap(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		status  int
		minSent int
		from    []net.HardwareAddr // replies must come from these MACs
	}{
		{name: "verify", args: []string{"verify", "--broadcast", "always", "--format", "json", okIP.String(), staleIP.String(), conflictIP.String()},
			status: exitCritical, from: []net.HardwareAddr{netns.HostMAC(1), netns.HostMAC(2), netns.HostMAC(3), netns.HostMAC(4)}},
		{name: "repair", args: []string{"repair", "--include-permanent", "--format", "json", staleIP.String(), deadIP.String()},
			status: exitWarning, from: []net.HardwareAddr{netns.HostMAC(2)}},
		{name: "probe", args: []string{"probe", "-c", "2", "--interval", "10ms", okIP.String()},
			status: exitOK, minSent: 2, from: []net.HardwareAddr{netns.HostMAC(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".pcap")
			began := time.Now()
			o := arpcheck(t, l.Prober, args(append([]string{tt.args[0], "--pcap", path, "--timeout", "200ms"}, tt.args[1:]...)...))
			ended := time.Now()
			if o.status != tt.status {
				t.Fatalf("want exit %d\n%s", tt.status, o)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pr, err := pcapgo.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			sent, recv := 0, 0
			var last time.Time
			for {
				data, ci, err := pr.ReadPacketData()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				fr, err := arpprobe.ParseFrame(data)
				if err != nil {
					t.Errorf("frame %x: %v", data, err)
					continue
				}
				if ci.Timestamp.Before(last.Add(-time.Second)) || ci.Timestamp.Before(began.Truncate(time.Microsecond)) ||
					ci.Timestamp.After(ended) {
					t.Errorf("frame at %v after one at %v, in a run from %v to %v", ci.Timestamp, last, began, ended)
				}
				last = ci.Timestamp
				switch {
				case fr.Op == 1 && fr.SenderMAC == [6]byte(netns.HostMAC(0)):
					sent++
				case fr.Op == 2 && slices.ContainsFunc(tt.from, func(m net.HardwareAddr) bool { return [6]byte(m) == fr.SenderMAC }):
					recv++
				default:
					t.Errorf("unexpected frame %+v", fr)
				}
			}
			want, received := tt.minSent, 1
			if tt.name != "probe" {
				r := parseJSON(t, o)
				want = int(r.Stats.SentUnicast + r.Stats.SentBroadcast)
				var st runStats
				if err := json.Unmarshal([]byte(o.stdout), &st); err != nil {
					t.Fatal(err)
				}
				received = int(st.Stats.Received)
			}
			// Every frame received in the run is captured (and any that
			// came after it, before the socket closed).
			if sent != want || recv < received || recv == 0 {
				t.Errorf("capture: %d requests, %d replies; want %d requests (as sent) and at least %d replies (as received)",
					sent, recv, want, received)
			}
			tshark := needProgram(t, "tshark")
			cmd := exec.Command(tshark, "-n", "-r", path, "-Y", "arp")
			cmd.Stderr = io.Discard // tshark warns about running as root
			out, err := cmd.Output()
			if n := strings.Count(string(out), "\n"); err != nil || n != sent+recv {
				t.Errorf("tshark -r: %v; %d ARP frames, want %d\n%s", err, n, sent+recv, out)
			}
			tcpdump := needProgram(t, "tcpdump")
			out, err = exec.Command(tcpdump, "-n", "-r", path).CombinedOutput()
			if n := strings.Count(string(out), " ARP, "); err != nil || n != sent+recv {
				t.Errorf("tcpdump -r: %v; %d ARP frames, want %d\n%s", err, n, sent+recv, out)
			}
		})
	}
	t.Run("unwritable", func(t *testing.T) {
		o := arpcheck(t, l.Prober, args("verify", "--pcap", filepath.Join(dir, "no", "such", "dir.pcap"), okIP.String()))
		if o.status != exitUnknown || !strings.Contains(o.stderr, "--pcap") {
			t.Errorf("want exit 3 and the --pcap file named\n%s", o)
		}
	})
}

// privilegedCopy copies the binary into a directory everyone may read
// and gives the copy file capabilities (setcap caps), as an
// administrator would to let an unprivileged user run it.
func privilegedCopy(t *testing.T, caps string) string {
	t.Helper()
	setcap := needProgram(t, "setcap")
	dir, err := os.MkdirTemp("", "arpcheck-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "arpcheck")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(setcap, caps, bin).CombinedOutput(); err != nil {
		t.Fatalf("setcap %s: %v\n%s", caps, err, out)
	}
	return bin
}

// runAsNobody runs bin inside ns as uid and gid 65534, with no capability
// but those of the file.
func runAsNobody(t *testing.T, ns *netns.NS, bin string, a ...string) outcome {
	t.Helper()
	cmd := exec.Command(bin, a...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := ns.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	return finish(t, cmd, &stdout, &stderr)
}

// With file capabilities an unprivileged user verifies and probes with
// CAP_NET_RAW alone; repair needs CAP_NET_ADMIN as well and says so.
func TestE2EFileCapabilities(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	raw := privilegedCopy(t, "cap_net_raw+ep")
	both := privilegedCopy(t, "cap_net_raw,cap_net_admin+ep")
	tests := []struct {
		name   string
		bin    string
		args   []string
		status int
		stdout string
		stderr string
		repair bool // the stale entry is repaired
	}{
		{"verify with cap_net_raw", raw, []string{"verify", "--timeout", "200ms", okIP.String(), staleIP.String()},
			exitCritical, "stale", "", false},
		{"probe with cap_net_raw", raw, []string{"probe", "-c", "1", "--timeout", "200ms", okIP.String()}, exitOK, "1 answered", "", false},
		{"repair with cap_net_raw", raw, []string{"repair", "--timeout", "200ms", "--include-permanent", staleIP.String()},
			exitUnknown, "write failed", "CAP_NET_ADMIN", false},
		{"repair with both", both, []string{"repair", "--timeout", "200ms", "--include-permanent", staleIP.String()},
			exitOK, "replaced", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := l.table()
			o := runAsNobody(t, l.Prober, tt.bin, tt.args...)
			if o.status != tt.status || !strings.Contains(o.stdout, tt.stdout) || !strings.Contains(o.stderr, tt.stderr) {
				t.Errorf("want exit %d, %q on stdout, %q on stderr\n%s", tt.status, tt.stdout, tt.stderr, o)
			}
			after := l.table()
			switch {
			case tt.repair && after[staleIP].MAC != netns.HostMAC(2).String():
				t.Errorf("%s: %v; want the owner's MAC", staleIP, after[staleIP])
			case !tt.repair && after[staleIP] != before[staleIP]:
				t.Errorf("%s changed from %v to %v", staleIP, before[staleIP], after[staleIP])
			}
		})
	}
}

// What the binary does to the system, traced: it opens only AF_PACKET and
// netlink sockets, runs no other program, and creates or writes no file
// but those it is asked to (--output, through a temporary file renamed
// over it, --pcap and --lock).
func TestE2ESystemFootprint(t *testing.T) {
	strace := needProgram(t, "strace")
	l := newLab(t, netlink.NUD_PERMANENT)
	dir := t.TempDir()
	out, pcap, lockf, trace := filepath.Join(dir, "report.json"), filepath.Join(dir, "run.pcap"),
		filepath.Join(dir, "run.lock"), filepath.Join(dir, "strace.log")
	for _, a := range [][]string{
		{"repair", "--include-permanent", "--delete-dead", "--format", "json", "--output", out, "--pcap", pcap, "--lock", lockf,
			okIP.String(), staleIP.String(), deadIP.String()},
		{"probe", "-c", "1", "--pcap", pcap, okIP.String()},
	} {
		cmd := exec.Command(strace, append([]string{"-f", "-qq", "-o", trace, "-e",
			"trace=socket,socketpair,execve,execveat,fork,vfork,open,openat,openat2,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,truncate,link,linkat,symlink,symlinkat",
			binary(t)}, a...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := l.Prober.Do(cmd.Start); err != nil {
			t.Fatal(err)
		}
		if o := finish(t, cmd, &stdout, &stderr); o.status > exitCritical {
			t.Fatalf("arpcheck %q under strace\n%s", a, o)
		}
		log, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		checkFootprint(t, string(log), binary(t), []string{out, pcap, lockf}, dir)
	}
}

var (
	socketCall = regexp.MustCompile(`\bsocket\((AF_\w+|\d+),`)
	execCall   = regexp.MustCompile(`\bexecve(at)?\("([^"]*)"`)
	openCall   = regexp.MustCompile(`\b(?:open|openat|openat2|creat)\((?:AT_FDCWD|-?\d+), "([^"]*)", ([^)]*)\)`)
	pathCalls  = regexp.MustCompile(`\b(rename|renameat2?|unlink|unlinkat|mkdir|mkdirat|truncate|link|linkat|symlink|symlinkat)\((.*)\)`)
)

// checkFootprint checks a strace log of one run.
func checkFootprint(t *testing.T, log, bin string, allowed []string, dir string) {
	t.Helper()
	okPath := func(p string) bool {
		if slices.Contains(allowed, p) {
			return true
		}
		// --output's temporary file: in the same directory, renamed
		// over the report.
		return filepath.Dir(p) == dir && strings.Contains(filepath.Base(p), filepath.Base(allowed[0]))
	}
	for _, line := range strings.Split(log, "\n") {
		if m := socketCall.FindStringSubmatch(line); m != nil && m[1] != "AF_PACKET" && m[1] != "AF_NETLINK" {
			t.Errorf("a socket other than AF_PACKET or netlink: %s", line)
		}
		if m := execCall.FindStringSubmatch(line); m != nil && m[2] != bin {
			t.Errorf("runs another program: %s", line)
		}
		if strings.Contains(line, "socketpair(") || strings.Contains(line, "vfork(") || strings.Contains(line, " fork(") {
			t.Errorf("%s", line)
		}
		if m := openCall.FindStringSubmatch(line); m != nil {
			writes := strings.Contains(m[2], "O_WRONLY") || strings.Contains(m[2], "O_RDWR") ||
				strings.Contains(m[2], "O_CREAT") || strings.Contains(m[2], "O_TRUNC")
			if writes && !okPath(m[1]) && m[1] != "/dev/null" {
				t.Errorf("opens a file for writing that it was not asked to write: %s", line)
			}
		}
		if m := pathCalls.FindStringSubmatch(line); m != nil {
			for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[2], -1) {
				if !okPath(q[1]) {
					t.Errorf("%s on a path it was not asked to write: %s", m[1], line)
				}
			}
		}
	}
	if n := len(execCall.FindAllString(log, -1)); n != 1 {
		t.Errorf("%d execve calls; want the one that started arpcheck", n)
	}
	if !strings.Contains(log, "socket(AF_PACKET") || !strings.Contains(log, "socket(AF_NETLINK") {
		t.Errorf("no AF_PACKET or netlink socket in the trace; is strace tracing?\n%.3000s", log)
	}
}

// repair -i with an interface the host does not have: exit 3, the
// interface named, nothing sent or written.
func TestE2ERepairUnknownInterface(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	before, frames := l.table(), l.framesSent()
	o := arpcheck(t, l.Prober, args("repair", "--include-permanent", "-i", "nosuch", staleIP.String()))
	if o.status != exitUnknown || !strings.Contains(o.stderr, `interface "nosuch": unknown interface`) {
		t.Errorf("want exit 3 naming the interface\n%s", o)
	}
	if after := l.table(); !sameMap(before, after) || l.framesSent() != frames {
		t.Errorf("table %v -> %v, %d frames sent; want nothing", before, after, l.framesSent()-frames)
	}
}
