package watchmetrics_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/watch"
	"github.com/arpcheck/arpcheck/arpprobe/watchmetrics"
)

type fixedStats watch.Stats

func (f fixedStats) Stats() watch.Stats { return watch.Stats(f) }

// scrape serves the collector's metrics over HTTP, as Prometheus would
// scrape them, and parses the text exposition.
func scrape(t *testing.T, src watchmetrics.Source) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(watchmetrics.New(src))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// value returns the value of the series of name with labels (name=value
// pairs), or NaN when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		if len(have) != len(labels)/2 {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return math.NaN()
}

// lagBounds are the bounds of a Watcher's lag histogram (watch.Stats.Lag).
var lagBounds = []time.Duration{
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

func TestMetrics(t *testing.T) {
	st := watch.Stats{
		Entries: map[arpprobe.Verdict]int{arpprobe.VerdictOK: 40, arpprobe.VerdictStale: 2, arpprobe.VerdictDead: 1},
		Checks:  map[watch.Cause]uint64{watch.CauseState: 7, watch.CauseWire: 1, watch.CauseSweep: 430},
		Repairs: map[arpprobe.Action]uint64{arpprobe.ActionReplaced: 3, arpprobe.ActionRefused: 2},
		Frames: arpprobe.Stats{SentUnicast: 500, SentBroadcast: 9, Replies: 480, Received: 1234,
			KernelDrops: 5},
		Events: 77, Resyncs: 1, DelaySource: watch.DelaySourcePoll, TraceEvents: 6, Sightings: 2, SightingsDropped: 4, CheckErrors: 0, Sweeps: 10,
		LastSweep:     time.Unix(1700000000, 500e6),
		SweepDuration: 1500 * time.Millisecond,
	}
	st.Lag.Bounds, st.Lag.Counts = lagBounds, make([]uint64, len(lagBounds)+1)
	st.Lag.Count, st.Lag.Sum = 3, 1700*time.Millisecond
	st.Frames.Dropped[arpprobe.DropUnsolicited] = 11
	st.Lag.Counts[5], st.Lag.Counts[6], st.Lag.Counts[len(lagBounds)] = 1, 1, 1 // ≤0.5 s, ≤1 s, beyond 60 s
	fams := scrape(t, fixedStats(st))

	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"arpcheck_watch_peers", []string{"verdict", "ok"}, 40},
		{"arpcheck_watch_peers", []string{"verdict", "stale"}, 2},
		{"arpcheck_watch_peers", []string{"verdict", "dead"}, 1},
		{"arpcheck_watch_peers", []string{"verdict", "conflict"}, 0},
		{"arpcheck_watch_checks_total", []string{"cause", "state"}, 7},
		{"arpcheck_watch_checks_total", []string{"cause", "wire"}, 1},
		{"arpcheck_watch_checks_total", []string{"cause", "mac"}, 0},
		{"arpcheck_watch_checks_total", []string{"cause", "sweep"}, 430},
		{"arpcheck_watch_repair_actions_total", []string{"action", "replaced"}, 3},
		{"arpcheck_watch_repair_actions_total", []string{"action", "refused"}, 2},
		{"arpcheck_watch_repair_actions_total", []string{"action", "healed"}, 0},
		{"arpcheck_watch_frames_sent_total", []string{"kind", "unicast"}, 500},
		{"arpcheck_watch_frames_sent_total", []string{"kind", "broadcast"}, 9},
		{"arpcheck_watch_replies_total", nil, 480},
		{"arpcheck_watch_frames_received_total", nil, 1234},
		{"arpcheck_watch_frames_dropped_total", []string{"reason", "unsolicited"}, 11},
		{"arpcheck_watch_frames_dropped_total", []string{"reason", "kernel"}, 5},
		{"arpcheck_watch_frames_dropped_total", []string{"reason", "backlog"}, 4},
		{"arpcheck_watch_frames_dropped_total", []string{"reason", "short"}, 0},
		{"arpcheck_watch_events_total", nil, 77},
		{"arpcheck_watch_event_resyncs_total", nil, 1},
		{"arpcheck_watch_delay_source", []string{"source", "poll"}, 1},
		{"arpcheck_watch_delay_source", []string{"source", "tracepoints"}, 0},
		{"arpcheck_watch_delay_source", []string{"source", "none"}, 0},
		{"arpcheck_watch_trace_events_total", nil, 6},
		{"arpcheck_watch_sightings_total", nil, 2},
		{"arpcheck_watch_check_errors_total", nil, 0},
		{"arpcheck_watch_sweeps_total", nil, 10},
		{"arpcheck_watch_sweep_duration_seconds", nil, 1.5},
		{"arpcheck_watch_last_sweep_timestamp_seconds", nil, 1700000000.5},
	}
	for _, tt := range tests {
		if got := value(fams, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// promtool check metrics' linter: names, units, _total on counters.
	var mfs []*dto.MetricFamily
	for _, f := range fams {
		mfs = append(mfs, f)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	// Types, for PromQL's rate() and histogram_quantile().
	for name, f := range fams {
		want := dto.MetricType_COUNTER
		switch {
		case name == "arpcheck_watch_event_lag_seconds":
			want = dto.MetricType_HISTOGRAM
		case !strings.HasSuffix(name, "_total"):
			want = dto.MetricType_GAUGE
		}
		if f.GetType() != want {
			t.Errorf("%s is a %s; want %s", name, f.GetType(), want)
		}
	}
	if len(fams) != 17 {
		var names []string
		for n := range fams {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Errorf("%d metric families %v; want 17", len(fams), names)
	}

	h := fams["arpcheck_watch_event_lag_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 1.7 {
		t.Errorf("lag histogram: count %d, sum %v; want 3, 1.7", h.GetSampleCount(), h.GetSampleSum())
	}
	wantCum := map[float64]uint64{0.25: 0, 0.5: 1, 1: 2, 60: 2}
	for _, b := range h.GetBucket() {
		if w, ok := wantCum[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("lag bucket le=%v: %d; want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
		delete(wantCum, b.GetUpperBound())
	}
	if len(wantCum) > 0 {
		t.Errorf("lag buckets missing: %v", wantCum)
	}
}

// Before the first sweep the timestamp is 0, and every labelled series
// is there already, at 0, so alerts and rates work from the first
// scrape.
func TestMetricsAtStart(t *testing.T) {
	var st watch.Stats
	st.Lag.Bounds, st.Lag.Counts = lagBounds, make([]uint64, len(lagBounds)+1)
	fams := scrape(t, fixedStats(st))
	if got := value(fams, "arpcheck_watch_last_sweep_timestamp_seconds"); got != 0 {
		t.Errorf("last sweep timestamp %v; want 0", got)
	}
	for name, n := range map[string]int{
		"arpcheck_watch_peers": len(arpprobe.Verdicts), "arpcheck_watch_checks_total": len(watch.Causes),
		"arpcheck_watch_repair_actions_total": 6, "arpcheck_watch_frames_sent_total": 2,
	} {
		if got := len(fams[name].GetMetric()); got != n {
			t.Errorf("%s: %d series; want %d", name, got, n)
		}
	}
}
