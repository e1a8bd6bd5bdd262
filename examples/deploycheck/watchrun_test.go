package deploycheck

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// setprivArgs returns the setpriv(1) arguments that give a command what
// the unit gives its ExecStart: a user other than root, only the unit's
// capabilities (bounding and ambient), no new privileges. nobody stands
// in for the unit's user, which this machine need not have.
func setprivArgs(t *testing.T, u map[string]map[string][]string) []string {
	t.Helper()
	caps := func(key string) string {
		var s []string
		for _, c := range strings.Fields(serviceKey(t, u, key)) {
			s = append(s, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
		return "-all," + strings.Join(s, ",")
	}
	args := []string{"--reuid=65534", "--regid=65534", "--clear-groups",
		"--bounding-set=" + caps("CapabilityBoundingSet"),
		"--inh-caps=" + caps("AmbientCapabilities"), "--ambient-caps=" + caps("AmbientCapabilities")}
	if serviceKey(t, u, "NoNewPrivileges") == "yes" {
		args = append(args, "--no-new-privs")
	}
	return args
}

// The unit's command line, run with the unit's user and capabilities on
// a LAN of namespaces, does what the unit promises: it repairs a stale
// entry, answers /healthz and /metrics on its --listen port, reads its
// peers again on the unit's reload signal and stops at once on SIGTERM
// (systemd's stop) with status 0. It sees entries enter DELAY by reading
// the table; with the tracepoints drop-in's capabilities added, through
// the tracepoints.
func TestWatchUnitRuns(t *testing.T) {
	for _, tt := range []struct {
		name, dropIn, source string
	}{
		{"unit", "", "poll"},
		{"with " + tracepointsDropIn, tracepointsDropIn, "tracepoints"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := unitFile(t, watchUnit)
			if tt.dropIn != "" {
				u = withDropIn(t, u, unitFile(t, tt.dropIn))
			}
			testWatchUnitRuns(t, u, tt.source)
		})
	}
}

// withDropIn returns the unit u with the drop-in d applied as systemd
// applies it to the capability lists: added to the unit's.
func withDropIn(t *testing.T, u, d map[string]map[string][]string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	for sec, keys := range u {
		out[sec] = map[string][]string{}
		for k, v := range keys {
			out[sec][k] = slices.Clone(v)
		}
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		out["Service"][key] = []string{serviceKey(t, u, key) + " " + serviceKey(t, d, key)}
	}
	return out
}

func testWatchUnitRuns(t *testing.T, u map[string]map[string][]string, source string) {
	setpriv := need(t, "setpriv")
	var (
		prefix = netip.MustParsePrefix("198.18.2.1/24")
		a      = netip.MustParseAddr("198.18.2.2")
		b      = netip.MustParseAddr("198.18.2.3")
		oldMAC = net.HardwareAddr{0x02, 0, 0, 0, 0xee, 0x03} // b's before it was replaced
	)
	lan := netns.NewLANT(t, prefix, a, b)
	args := watchArgs(t, u)
	stop, err := time.ParseDuration(serviceKey(t, u, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	_, port, err := net.SplitHostPort(flagValue(args, "--listen"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []struct {
		ip  netip.Addr
		mac net.HardwareAddr
	}{{a, netns.HostMAC(1)}, {b, oldMAC}} {
		if err := lan.Prober.AddNeigh(netns.LANIface, seed.ip, seed.mac, netlink.NUD_STALE, 0); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, append(append(setprivArgs(t, u), "--", cli(t)), args[1:]...)...)
	var stderr proctest.Buffer
	cmd.Stderr = &stderr
	if err := lan.Prober.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	exited, done := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("watch's standard error:\n%s", stderr.String())
		}
	}()

	get := proctest.Getter(lan.Prober)
	base := "http://" + net.JoinHostPort("127.0.0.1", port)
	proctest.WaitFor(t, 15*time.Second, "the stale entry repaired and /healthz ok", func() (bool, string) {
		select {
		case <-done:
			t.Fatal("watch exited")
		default:
		}
		n, err := lan.Prober.Neigh(netns.LANIface, b)
		if err != nil || n == nil || n.HardwareAddr.String() != netns.HostMAC(2).String() {
			return false, fmt.Sprintf("entry of %s: %v %v", b, n, err)
		}
		status, body, err := get(base + "/healthz")
		return status == http.StatusOK, fmt.Sprintf("/healthz: %d %q %v", status, body, err)
	})
	status, metrics, err := get(base + "/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("/metrics: %d %v", status, err)
	}
	series, err := parsePromText(metrics)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	if got := series[`arpcheck_watch_peers{verdict="ok"}`]; got != 2 {
		t.Errorf(`arpcheck_watch_peers{verdict="ok"} = %v; want 2`, got)
	}
	if got := series[`arpcheck_watch_repair_actions_total{action="replaced"}`] + series[`arpcheck_watch_repair_actions_total{action="healed"}`]; got != 1 {
		t.Errorf("arpcheck_watch_repair_actions_total replaced + healed = %v; want 1", got)
	}
	if got := series[`arpcheck_watch_delay_source{source="`+source+`"}`]; got != 1 {
		t.Errorf(`arpcheck_watch_delay_source{source=%q} = %v; want 1`, source, got)
	}

	// systemctl reload: the signal ExecReload sends.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, 5*time.Second, "SIGHUP logged", func() (bool, string) {
		return strings.Contains(stderr.String(), "SIGHUP: peers reloaded"), "no \"SIGHUP: peers reloaded\" on standard error"
	})

	// systemctl stop: SIGTERM, then SIGKILL after TimeoutStopSec.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v; want exit status 0", err)
		}
	case <-time.After(stop):
		t.Errorf("still running %v after SIGTERM (TimeoutStopSec=%v): systemd would kill it", stop, stop)
	}
}
