package main

// End-to-end tests: the arpcheck binary, built once, run inside the
// prober namespace of a LAN of real kernels (internal/netns): a switch
// namespace with a bridge, and a namespace per host. Everything the tests
// create lives in those namespaces, which go when the test ends, whether
// it passes or fails. Addresses are from 198.18.0.0/15.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/arpcheck/arpcheck/internal/proctest"
)

// arpcheckBuild is this package built as a program, for the end-to-end tests.
var arpcheckBuild proctest.Build

func TestMain(m *testing.M) {
	code := m.Run()
	arpcheckBuild.Remove()
	os.Exit(code)
}

// binary returns the path of the arpcheck binary, built on first use
// (with the race detector when the tests run with it) into a directory
// that every user may read, so that it can run as nobody.
func binary(t *testing.T) string {
	t.Helper()
	return arpcheckBuild.Path(t, "arpcheck", func(path string) error { return proctest.GoBuild(path, ".", raceEnabled) })
}

// invocation is one run of the binary.
type invocation struct {
	args  []string
	stdin string
	env   []string // added to an environment without ARPCHECK_ variables
	// nobody runs it as uid and gid 65534, with only the ambient
	// capabilities given.
	nobody  bool
	ambient []uintptr
}

// outcome is what a run of the binary did.
type outcome struct {
	status         int
	stdout, stderr string
}

func (o outcome) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", o.status, o.stdout, o.stderr)
}

// start starts the binary inside ns: the child is forked from a thread
// that is in ns, so it is born in ns. Wait for it with finish.
func start(t *testing.T, ns *netns.NS, inv invocation) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary(t), inv.args...)
	cmd.Stdin = strings.NewReader(inv.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, inv.env...)
	if inv.nobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: false},
			AmbientCaps: inv.ambient,
		}
	}
	if err := ns.Do(cmd.Start); err != nil {
		t.Fatalf("start arpcheck %q: %v", inv.args, err)
	}
	return cmd, &stdout, &stderr
}

func finish(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) outcome {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("arpcheck %q: %v", cmd.Args[1:], err)
	}
	o := outcome{status: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if o.status < 0 {
		t.Fatalf("arpcheck %q did not exit: %v\n%s", cmd.Args[1:], cmd.ProcessState, o)
	}
	return o
}

// arpcheck runs the binary inside ns and returns what it did.
func arpcheck(t *testing.T, ns *netns.NS, inv invocation) outcome {
	t.Helper()
	cmd, stdout, stderr := start(t, ns, inv)
	return finish(t, cmd, stdout, stderr)
}

// args is shorthand for an invocation with arguments only.
func args(a ...string) invocation { return invocation{args: a} }

// The lab's addresses.
var (
	lanPrefix   = netip.MustParsePrefix("198.18.0.1/24")
	okIP        = netip.MustParseAddr("198.18.0.2") // host 1, cached right
	staleIP     = netip.MustParseAddr("198.18.0.3") // host 2, cached with wrongMAC
	deadIP      = netip.MustParseAddr("198.18.0.4") // nobody, cached with deadMAC
	conflictIP  = netip.MustParseAddr("198.18.0.5") // hosts 3 and 4, cached as host 3
	uncachedIP  = netip.MustParseAddr("198.18.0.6") // host 5, not cached
	gatewayIP   = netip.MustParseAddr("198.18.0.254")
	behindGWIP  = netip.MustParseAddr("198.19.0.9") // routed through gatewayIP
	noRouteIP   = netip.MustParseAddr("198.19.5.5") // no route at all
	wrongMAC, _ = net.ParseMAC("02:00:00:00:99:03")
	deadMAC, _  = net.ParseMAC("02:00:00:00:99:04")
)

// lab is a LAN with a peer for every verdict.
type lab struct {
	*netns.LAN
	t *testing.T
}

// newLab builds the LAN and seeds the prober's neighbour table with
// entries in state (netlink.NUD_STALE, NUD_PERMANENT ...): okIP with its
// host's MAC, staleIP with wrongMAC, deadIP with deadMAC, conflictIP
// with host 3's MAC; uncachedIP gets no entry. A PERMANENT entry never
// changes by itself; a STALE one is healed by the kernel when it sees
// the owner's reply (after its locktime of 1 s).
func newLab(t *testing.T, state int) *lab {
	t.Helper()
	l := &lab{LAN: netns.NewLANT(t, lanPrefix, okIP, staleIP, conflictIP, conflictIP, uncachedIP), t: t}
	if err := l.Prober.AddRoute(netip.MustParsePrefix("198.19.0.0/24"), netns.LANIface, gatewayIP); err != nil {
		t.Fatal(err)
	}
	l.seed(okIP, netns.HostMAC(1), state)
	l.seed(staleIP, wrongMAC, state)
	l.seed(deadIP, deadMAC, state)
	l.seed(conflictIP, netns.HostMAC(3), state)
	return l
}

func (l *lab) seed(ip netip.Addr, mac net.HardwareAddr, state int) {
	l.t.Helper()
	if err := l.Prober.AddNeigh(netns.LANIface, ip, mac, state, 0); err != nil {
		l.t.Fatal(err)
	}
}

// entry is a neighbour entry as the tests compare them.
type entry struct {
	MAC   string
	State string
}

// table returns the prober's IPv4 neighbour entries on the LAN by
// address.
func (l *lab) table() map[netip.Addr]entry { return l.entriesOn(netns.LANIface) }

// entriesOn returns the prober's IPv4 entries on iface, by address.
func (l *lab) entriesOn(iface string) map[netip.Addr]entry {
	l.t.Helper()
	idx, err := l.Prober.LinkIndex(iface)
	if err != nil {
		l.t.Fatal(err)
	}
	list, err := l.Prober.Handle().NeighList(idx, netlink.FAMILY_V4)
	for try := 0; try < 3 && errors.Is(err, netlink.ErrDumpInterrupted); try++ {
		list, err = l.Prober.Handle().NeighList(idx, netlink.FAMILY_V4)
	}
	if err != nil {
		l.t.Fatal(err)
	}
	out := make(map[netip.Addr]entry)
	for _, n := range list {
		ip, _ := netip.AddrFromSlice(n.IP)
		out[ip.Unmap()] = entry{MAC: n.HardwareAddr.String(), State: neighState(n.State)}
	}
	return out
}

func neighState(s int) string {
	names := map[int]string{netlink.NUD_INCOMPLETE: "INCOMPLETE", netlink.NUD_REACHABLE: "REACHABLE",
		netlink.NUD_STALE: "STALE", netlink.NUD_DELAY: "DELAY", netlink.NUD_PROBE: "PROBE",
		netlink.NUD_FAILED: "FAILED", netlink.NUD_NOARP: "NOARP", netlink.NUD_PERMANENT: "PERMANENT"}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", s)
}

// framesSent returns how many frames the prober has sent on the LAN, as
// its port on the switch counts them received.
func (l *lab) framesSent() uint64 {
	l.t.Helper()
	link, err := l.Switch.Handle().LinkByName("p0")
	if err != nil {
		l.t.Fatal(err)
	}
	return link.Attrs().Statistics.RxPackets
}

// The JSON report as a consumer reads it (extras included).
type jsonOut struct {
	Version    int     `json:"version"`
	Command    string  `json:"command"`
	DurationMS float64 `json:"duration_ms"`
	Peers      []struct {
		IP        string     `json:"ip"`
		Interface string     `json:"interface"`
		Cached    *jsonEntry `json:"cached"`
		Replies   []struct {
			MAC     string  `json:"mac"`
			Unicast bool    `json:"unicast"`
			RTTMS   float64 `json:"rtt_ms"`
		} `json:"replies"`
		Owner   *string    `json:"owner"`
		Verdict string     `json:"verdict"`
		Action  string     `json:"action"`
		Reason  string     `json:"reason"`
		After   *jsonEntry `json:"after"`
	} `json:"peers"`
	Summary  map[string]int `json:"summary"`
	ExitCode int            `json:"exit_code"`
	Stats    struct {
		SentUnicast   uint64 `json:"sent_unicast"`
		SentBroadcast uint64 `json:"sent_broadcast"`
	} `json:"stats"`
}

func parseJSON(t *testing.T, o outcome) *jsonOut {
	t.Helper()
	var r jsonOut
	dec := json.NewDecoder(strings.NewReader(o.stdout))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("parse JSON report: %v\n%s", err, o)
	}
	if dec.More() {
		t.Fatalf("more than one JSON object:\n%s", o)
	}
	return &r
}

// peerMap indexes a JSON report's peers by address.
func (r *jsonOut) peer(t *testing.T, ip netip.Addr) int {
	t.Helper()
	for i, p := range r.Peers {
		if p.IP == ip.String() {
			return i
		}
	}
	t.Fatalf("no peer %s in the report", ip)
	return -1
}

func macs(r *jsonOut, i int) []string {
	var out []string
	for _, rep := range r.Peers[i].Replies {
		out = append(out, rep.MAC)
	}
	slices.Sort(out)
	return out
}

func strs(a ...fmt.Stringer) []string {
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = s.String()
	}
	return out
}
