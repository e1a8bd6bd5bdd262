package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/arpprobe/watch"
	"github.com/arpcheck/arpcheck/internal/netns"
)

func TestWatchFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the usage error; "" for none
	}{
		{args: []string{"--repair", "--include-permanent", "--dry-run", "--delete-dead"}},
		{args: []string{"--include-permanent"}, want: "--include-permanent needs --repair"},
		{args: []string{"--dry-run", "--delete-dead"}, want: "--dry-run needs --repair; --delete-dead needs --repair"},
		{args: []string{"--interval", "-1s"}, want: "--interval must not be negative"},
		{args: []string{"--poll", "-1s"}, want: "--poll must not be negative"},
		{args: []string{"--timeout", "0"}, want: "--timeout must be positive"},
		{args: []string{"--log-format", "xml"}, want: `--log-format "xml": want text or json`},
		{args: []string{"--log-level", "loud"}, want: `--log-level "loud": want debug, info, warn or error`},
		{args: []string{"--broadcast", "sometimes"}, want: `--broadcast "sometimes"`},
	}
	for _, tt := range tests {
		var got *watchConfig
		var gotErr error
		app := &cli.App{Commands: []*cli.Command{{Name: "watch", Flags: watchFlags(),
			Action: func(c *cli.Context) error { got, gotErr = readWatchFlags(c); return nil }}}}
		if err := app.Run(append([]string{"arpcheck", "watch"}, tt.args...)); err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		switch {
		case tt.want == "" && gotErr != nil:
			t.Errorf("%q: %v; want no error", tt.args, gotErr)
		case tt.want != "" && (gotErr == nil || !strings.Contains(gotErr.Error(), tt.want)):
			t.Errorf("%q: error %v; want one saying %q", tt.args, gotErr, tt.want)
		}
		if tt.want == "" && got != nil {
			r := got.watch.Check.Repair
			if r == nil || !r.IncludePermanent || !r.DryRun || !r.DeleteDead {
				t.Errorf("%q: repair policy %+v", tt.args, r)
			}
			if got.watch.Check.Probe.Timeout != watch.DefaultTimeout || got.watch.Interval != watch.DefaultInterval ||
				got.watch.Poll != watch.DefaultPoll {
				t.Errorf("%q: defaults: timeout %v, interval %v, poll %v", tt.args, got.watch.Check.Probe.Timeout, got.watch.Interval, got.watch.Poll)
			}
		}
	}
	// --tracepoints is on unless turned off.
	for args, want := range map[string]bool{"": true, "--tracepoints=false": false, "--tracepoints": true} {
		var got *watchConfig
		app := &cli.App{Commands: []*cli.Command{{Name: "watch", Flags: watchFlags(),
			Action: func(c *cli.Context) (err error) { got, err = readWatchFlags(c); return err }}}}
		if err := app.Run(append([]string{"arpcheck", "watch"}, strings.Fields(args)...)); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if got.trace != want {
			t.Errorf("%q: tracepoints %v; want %v", args, got.trace, want)
		}
	}
	// Every flag reads its ARPCHECK_ variable.
	for _, f := range watchFlags() {
		ev, ok := f.(interface{ GetEnvVars() []string })
		if want := envVars(f.Names()[0]); !ok || len(ev.GetEnvVars()) != 1 || ev.GetEnvVars()[0] != want[0] {
			t.Errorf("flag --%s reads no %s", f.Names()[0], want[0])
		}
	}
}

// watchClient returns an HTTP client whose connections are made from inside ns.
func watchClient(ns *netns.NS) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = ns.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// watchEventually calls f every 50 ms until it returns "", failing the test
// with its last answer after 10 s.
func watchEventually(t *testing.T, what string, f func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = f(); last == "" {
			return
		}
	}
	t.Fatalf("%s: not within 10 s: %s", what, last)
}

// The daemon end to end: watch --repair --include-permanent --listen in
// the prober namespace. A host's address moves to a new MAC, announced
// (arp_notify): the PERMANENT entry is repaired; /metrics says so;
// SIGHUP reads a new peer list; SIGTERM stops it with status 0, every
// log line being JSON.
func TestWatchBinary(t *testing.T) {
	stay, move := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	l := netns.NewLANT(t, lanPrefix, stay, move)
	h := l.Hosts[1]
	if err := h.NS.Sysctl("net/ipv4/conf/"+netns.HostIface+"/arp_notify", "1"); err != nil {
		t.Fatal(err)
	}
	for _, host := range l.Hosts {
		if err := l.Prober.AddNeigh(netns.LANIface, host.Addr, netns.HostMAC(host.N), netlink.NUD_PERMANENT, 0); err != nil {
			t.Fatal(err)
		}
	}
	peers := filepath.Join(t.TempDir(), "peers")
	if err := os.WriteFile(peers, []byte(stay.String()+"\n"+move.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const addr = "127.0.0.1:9808" // the prober namespace's own loopback
	cmd, stdout, stderr := start(t, l.Prober, invocation{
		args: []string{"watch", "--repair", "--include-permanent", "--interval", "1h", "--log-format", "json"},
		env:  []string{"ARPCHECK_LISTEN=" + addr, "ARPCHECK_PEERS=" + peers, "GOGC="}, // GOGC: none of the test's
	})
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	client := watchClient(l.Prober)
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	watchEventually(t, "/healthz ok after the first sweep", func() string {
		if code, body := get("/healthz"); code != http.StatusOK {
			return fmt.Sprintf("%d %s", code, body)
		}
		return ""
	})
	metric := func(name string, labels ...string) float64 {
		t.Helper()
		code, body := get("/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		return watchSeries(fams[name], labels...)
	}
	if ok := metric("arpcheck_watch_peers", "verdict", "ok"); ok != 2 {
		t.Errorf("after the first sweep: %v entries ok; want 2", ok)
	}
	// Run as root: the tracepoints are used, and say so.
	if v := metric("arpcheck_watch_delay_source", "source", "tracepoints"); v != 1 {
		t.Errorf(`arpcheck_watch_delay_source{source="tracepoints"} = %v; want 1`, v)
	}
	if v := metric("arpcheck_build_info", "command", "watch", "version", binaryVersion(t)); v != 1 {
		t.Errorf(`arpcheck_build_info{command="watch",version=%q} = %v; want 1`, binaryVersion(t), v)
	}
	// The environment sets no GOGC: watch runs with its own.
	if v := metric("go_gc_gogc_percent"); v != watchGCPercent {
		t.Errorf("go_gc_gogc_percent = %v; want %d", v, watchGCPercent)
	}

	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x03}
	if err := h.SetMAC(newMAC); err != nil { // announced: arp_notify
		t.Fatal(err)
	}
	watchEventually(t, "the PERMANENT entry repaired", func() string {
		n, err := l.Prober.Neigh(netns.LANIface, move)
		if err != nil || n == nil || n.HardwareAddr.String() != newMAC.String() || n.State != netlink.NUD_PERMANENT {
			return fmt.Sprintf("entry %v, %v", n, err)
		}
		return ""
	})
	watchEventually(t, "the repair in the metrics", func() string {
		got := fmt.Sprint(metric("arpcheck_watch_repair_actions_total", "action", "replaced"),
			metric("arpcheck_watch_checks_total", "cause", "wire"), metric("arpcheck_watch_peers", "verdict", "ok"))
		if got != "1 1 2" {
			return "replaced, wire checks, ok entries: " + got
		}
		return ""
	})

	// A new list without the moved address; SIGHUP reads it.
	if err := os.WriteFile(peers, []byte(stay.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	watchEventually(t, "the new list in the metrics", func() string {
		if n := metric("arpcheck_watch_peers", "verdict", "ok"); n != 1 {
			return fmt.Sprintf("%v entries ok", n)
		}
		return ""
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan outcome, 1)
	go func() { done <- finish(t, cmd, stdout, stderr) }()
	var o outcome
	select {
	case o = <-done:
		stopped = true
	case <-time.After(10 * time.Second):
		t.Fatal("watch still running 10 s after SIGTERM")
	}
	if o.status != 0 || o.stdout != "" {
		t.Errorf("after SIGTERM: %s; want exit 0 and nothing on stdout", o)
	}
	var msgs []string
	sc := bufio.NewScanner(strings.NewReader(o.stderr))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		msg := fmt.Sprint(rec["msg"])
		if msg == "repaired" && (rec["ip"] != move.String() || rec["owner"] != newMAC.String() || rec["cause"] != "wire") {
			t.Errorf("repair logged as %v; want ip %s, owner %s, cause wire", rec, move, newMAC)
		}
		msgs = append(msgs, msg)
	}
	if want := "watching|" + tracepointsLog + "|" + ebpfSightingsLog + "|repaired|SIGHUP: peers reloaded|stopped"; strings.Join(msgs, "|") != want {
		t.Errorf("log messages %q; want %q", strings.Join(msgs, "|"), want)
	}
	if code, _ := get("/healthz"); code != 0 {
		t.Errorf("/healthz still answers (%d) after watch stopped", code)
	}
}

// tracepointsLog is what watch logs when it sees entries enter DELAY
// through the tracepoints.
const tracepointsLog = "entries entering DELAY are seen through the kernel's neigh tracepoints; the table is not polled"

// ebpfSightingsLog is what watch logs when its IPv4 sockets take the
// eBPF filter.
const ebpfSightingsLog = "IPv4 sightings from every frame whose source MAC differs from the cached one (eBPF socket filter)"

// binaryVersion is the version the binary under test reports.
func binaryVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(binary(t), "version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 {
		t.Fatalf("arpcheck version: %q, %v", out, err)
	}
	return f[1]
}

// watchSeries is the value of f's series with labels (name, value
// pairs); -1 when there is none.
func watchSeries(f *dto.MetricFamily, labels ...string) float64 {
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels)/2 {
			continue
		}
		for i, l := range m.GetLabel() {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// TestSetWatchGC: watch lowers GOGC to watchGCPercent when the
// environment sets none, and leaves what the runtime took from GOGC
// otherwise.
func TestSetWatchGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tests := []struct {
		name    string
		gogc    string // the environment's GOGC
		runtime int    // what the runtime applied from it
		want    int
	}{
		{"unset", "", 100, watchGCPercent},
		{"200", "200", 200, 200},
		{"100", "100", 100, 100},
		{"off", "off", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(tt.runtime)
			setWatchGC(tt.gogc)
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Errorf("GOGC %q: GC percent %d; want %d", tt.gogc, got, tt.want)
			}
		})
	}
}
