package main

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/watch"
)

// busyStats is a Watcher that has done a bit of everything.
type busyStats struct{}

// lagBounds are the bounds of the watcher's lag histogram.
var lagBounds = []time.Duration{
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

func (busyStats) Stats() watch.Stats {
	st := watch.Stats{
		Entries: map[arpprobe.Verdict]int{arpprobe.VerdictOK: 3, arpprobe.VerdictStale: 1},
		Checks:  map[watch.Cause]uint64{watch.CauseSweep: 4},
		Repairs: map[arpprobe.Action]uint64{arpprobe.ActionReplaced: 1, arpprobe.ActionRefused: 1},
		Frames:  arpprobe.Stats{SentUnicast: 4, SentBroadcast: 1, Replies: 4, Received: 5, KernelDrops: 1},
	}
	st.Lag.Bounds, st.Lag.Counts = lagBounds, make([]uint64, len(lagBounds)+1)
	st.Lag.Count, st.Lag.Sum = 1, time.Second
	st.Lag.Counts[6] = 1
	return st
}

// The metric naming rule (README, "Metrics"), checked on what the
// textfile (verify/repair --format prometheus) and watch's /metrics
// really export:
//   - promlint, the linter of promtool check metrics, finds nothing;
//   - every name starts with arpcheck_; watch's with arpcheck_watch_,
//     but for arpcheck_build_info, the same in both with the same labels;
//   - the textfile's are gauges of one run, never _total; watch's
//     counters, and only they, end in _total;
//   - a concept both export has one name: the textfile's arpcheck_X is
//     watch's arpcheck_watch_X (a gauge) or arpcheck_watch_X_total (a
//     counter), with the same labels and label values;
//   - every other metric is listed below as one side's own, so a new
//     metric has to be placed by the rule.
func TestMetricNames(t *testing.T) {
	textOnly := []string{"arpcheck_exit_code", "arpcheck_last_run_timestamp_seconds", "arpcheck_run_duration_seconds",
		"arpcheck_peers_checked", "arpcheck_peers_repaired", "arpcheck_peer_verdict"}
	watchOnly := []string{"arpcheck_watch_checks_total", "arpcheck_watch_replies_total", "arpcheck_watch_events_total",
		"arpcheck_watch_event_resyncs_total", "arpcheck_watch_delay_source", "arpcheck_watch_trace_events_total",
		"arpcheck_watch_sightings_total", "arpcheck_watch_event_lag_seconds",
		"arpcheck_watch_check_errors_total", "arpcheck_watch_sweeps_total", "arpcheck_watch_sweep_duration_seconds",
		"arpcheck_watch_last_sweep_timestamp_seconds"}
	// Label values only one side has: the backlog of sightings is
	// watch's.
	extraValues := map[string][]string{"reason": {"backlog"}}

	var text bytes.Buffer
	if err := writePrometheus(&text, sampleResult(), time.Now()); err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(text.Bytes())).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint on the textfile: %v %v", problems, err)
	}
	textFams := parseMetrics(t, text.Bytes())
	mfs, err := watchRegistry(busyStats{}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err = promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint on watch's /metrics: %v %v", problems, err)
	}
	watchFams := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "go_") || strings.HasPrefix(mf.GetName(), "process_") {
			continue // the Go client's own collectors
		}
		watchFams[mf.GetName()] = mf
	}

	for name, mf := range textFams {
		if !strings.HasPrefix(name, "arpcheck_") || strings.HasPrefix(name, "arpcheck_watch_") {
			t.Errorf("textfile metric %s: want arpcheck_ and not arpcheck_watch_", name)
		}
		if mf.GetType() != dto.MetricType_GAUGE || strings.HasSuffix(name, "_total") {
			t.Errorf("textfile metric %s: %s; want a gauge, not named _total", name, mf.GetType())
		}
	}
	for name, mf := range watchFams {
		if !strings.HasPrefix(name, "arpcheck_watch_") && name != "arpcheck_build_info" {
			t.Errorf("watch metric %s: want arpcheck_watch_", name)
		}
		if (mf.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("watch metric %s is a %s: _total is for counters, and only for them", name, mf.GetType())
		}
	}

	pairs := map[string]string{"arpcheck_build_info": "arpcheck_build_info"}
	for name := range textFams {
		if slices.Contains(textOnly, name) || name == "arpcheck_build_info" {
			continue
		}
		stem := strings.TrimPrefix(name, "arpcheck_")
		for _, w := range []string{"arpcheck_watch_" + stem, "arpcheck_watch_" + stem + "_total"} {
			if watchFams[w] != nil {
				pairs[name] = w
			}
		}
		if pairs[name] == "" {
			t.Errorf("textfile metric %s has no watch counterpart arpcheck_watch_%s[_total], and is not listed as the textfile's own", name, stem)
		}
	}
	paired := slices.Collect(maps.Values(pairs))
	for name := range watchFams {
		if !slices.Contains(paired, name) && !slices.Contains(watchOnly, name) {
			t.Errorf("watch metric %s has no textfile counterpart, and is not listed as watch's own", name)
		}
	}
	for _, name := range watchOnly {
		if watchFams[name] == nil {
			t.Errorf("watch exports no %s", name)
		}
	}
	for text, watch := range pairs {
		tl, wl := labelValues(textFams[text]), labelValues(watchFams[watch])
		if text != "arpcheck_build_info" {
			delete(tl, "command") // every textfile series has it
		}
		if !slices.Equal(slices.Sorted(maps.Keys(tl)), slices.Sorted(maps.Keys(wl))) {
			t.Errorf("%s has labels %v, %s %v; want the same", text, slices.Sorted(maps.Keys(tl)), watch, slices.Sorted(maps.Keys(wl)))
			continue
		}
		for l, tv := range tl {
			wv := slices.DeleteFunc(wl[l], func(v string) bool { return slices.Contains(extraValues[l], v) })
			if l != "command" && !slices.Equal(tv, wv) {
				t.Errorf("%s{%s} has values %q, %s %q; want the same", text, l, tv, watch, wv)
			}
		}
	}
	if b := watchFams["arpcheck_build_info"]; b == nil || labelValues(b)["command"][0] != "watch" {
		t.Errorf("watch's arpcheck_build_info: %v; want one with command=\"watch\"", b)
	}
}

// labelValues returns the sorted values of each label of a family.
func labelValues(mf *dto.MetricFamily) map[string][]string {
	m := map[string][]string{}
	for _, s := range mf.GetMetric() {
		for _, l := range s.GetLabel() {
			if !slices.Contains(m[l.GetName()], l.GetValue()) {
				m[l.GetName()] = append(m[l.GetName()], l.GetValue())
			}
		}
	}
	for _, v := range m {
		slices.Sort(v)
	}
	return m
}
