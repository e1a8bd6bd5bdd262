package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/arpcheck/arpcheck/examples/labs/benchlab/lab"
	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/arpcheck/arpcheck/internal/proctest"
)

// The idle lab (-watch-idle): what `arpcheck watch --repair` costs on a
// host whose table holds N entries and where nothing moves, with the
// neigh tracepoints and without them (--tracepoints=false: a read of the
// table every --poll). Each run starts watch, waits for its first sweep
// to end and for settle more, then measures the CPU time the process
// takes over the window; the peak RSS is the whole run's (VmHWM, the
// first sweep included).

// idleSettle is how long after the first sweep the window starts.
const idleSettle = 5 * time.Second

// idleMetricsAddr is where watch serves /metrics inside the prober's
// namespace.
const idleMetricsAddr = "127.0.0.1:9808"

// idleSample is one run of watch in the idle lab.
type idleSample struct {
	tracepoints bool
	window      time.Duration
	cpu         time.Duration // user + system time during the window
	peakRSS     int64         // bytes, VmHWM at the end
	source      string        // arpcheck_watch_delay_source that is 1
	events      float64       // arpcheck_watch_events_total during the window
	traced      float64       // arpcheck_watch_trace_events_total during the window
}

// runIdle builds the lab of n healthy entries and runs watch in it runs
// times with tracepoints and runs times without, interleaved, each for
// window after it settled, and prints a table.
func runIdle(ctx context.Context, o options, e *env, w io.Writer, logf func(string, ...any)) (err error) {
	l, err := lab.Build(ctx, lab.Config{N: o.n, Rewrite: o.rewrite, Log: logf})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	var samples []idleSample
	for i := range o.runs {
		for _, tp := range []bool{true, false} {
			logf("idle run %d/%d, tracepoints %v: %s", i+1, o.runs, tp, o.watchIdle)
			s, err := idleRun(ctx, l, e, tp, o.watchIdle)
			if err != nil {
				return err
			}
			samples = append(samples, s)
		}
	}
	fmt.Fprintf(w, "`arpcheck watch --repair`, %d entries, nothing moving; CPU over %s after the first sweep and %s more, peak RSS of the whole run (%s, %s)\n\n",
		o.n, o.watchIdle, idleSettle, kernelRelease(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(w, "| --tracepoints | delay source | CPU, % of a core | peak RSS | neighbour events | tracepoint events |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, s := range samples {
		fmt.Fprintf(w, "| %v | %s | %.2f %% | %.1f MB | %.0f | %.0f |\n", s.tracepoints, s.source,
			100*s.cpu.Seconds()/s.window.Seconds(), float64(s.peakRSS)/1e6, s.events, s.traced)
	}
	return nil
}

// idleRun runs watch once in l's prober namespace.
func idleRun(ctx context.Context, l *lab.Lab, e *env, tracepoints bool, window time.Duration) (s idleSample, err error) {
	s.tracepoints = tracepoints
	if err := l.Seed(); err != nil {
		return s, err
	}
	cmd := exec.CommandContext(ctx, e.arpcheck, "watch", "--repair", "--listen", idleMetricsAddr,
		"--tracepoints="+strconv.FormatBool(tracepoints))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := lab.StartIn(l.Prober, cmd); err != nil {
		return s, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("watch: %w: %s", werr, stderr.String())
		}
	}()
	scrape := metricsGetter(l.Prober, "http://"+idleMetricsAddr+"/metrics")
	var m map[string]float64
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		m, err = scrape()
		if err == nil && m["arpcheck_watch_last_sweep_timestamp_seconds"] > 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return s, fmt.Errorf("watch: no sweep ended within 5 minutes (%v): %s", err, stderr.String())
		}
	}
	time.Sleep(idleSettle)
	if m, err = scrape(); err != nil {
		return s, err
	}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return s, ctx.Err()
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	s.window, s.cpu = time.Since(start), cpu1-cpu0
	if s.peakRSS, err = procHWM(cmd.Process.Pid); err != nil {
		return s, err
	}
	m1, err := scrape()
	if err != nil {
		return s, err
	}
	for _, src := range []string{"tracepoints", "poll", "none"} {
		if m1[`arpcheck_watch_delay_source{source="`+src+`"}`] == 1 {
			s.source = src
		}
	}
	s.events = m1["arpcheck_watch_events_total"] - m["arpcheck_watch_events_total"]
	s.traced = m1["arpcheck_watch_trace_events_total"] - m["arpcheck_watch_trace_events_total"]
	return s, nil
}

// metricsGetter returns a function that scrapes url from inside ns and
// returns every sample by its series, as the text format writes it.
func metricsGetter(ns *netns.NS, url string) func() (map[string]float64, error) {
	get := proctest.Getter(ns)
	return func() (map[string]float64, error) {
		status, body, err := get(url)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("%s: status %d", url, status)
		}
		out := make(map[string]float64)
		for _, line := range strings.Split(body, "\n") {
			if line == "" || line[0] == '#' {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
		return out, nil
	}
}

// procCPU returns the user + system time pid has taken, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s: the
// USER_HZ every Linux architecture Go runs on exports).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procHWM returns pid's peak resident set size in bytes (VmHWM).
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}
