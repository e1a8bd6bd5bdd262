// Package watchmetrics exports what an watch.Watcher does as
// Prometheus metrics, for `arpcheck watch --listen` and for programs
// that run a Watcher themselves:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(watchmetrics.New(w))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is read from Watcher.Stats when Prometheus scrapes, so
// watching costs nothing extra between scrapes. The metrics, all named
// arpcheck_watch_*:
//
//	peers{verdict}                   gauge      watched addresses by the verdict of their latest check, after repair
//	checks_total{cause}              counter    addresses checked, by what asked (state, mac, new, wire, sweep)
//	repair_actions_total{action}     counter    actions on checked entries (replaced, healed, deleted; refused, would-*)
//	frames_sent_total{kind}          counter    requests sent (unicast, broadcast)
//	replies_total                    counter    replies matched to a check
//	frames_received_total            counter    ARP frames received, other hosts' requests included
//	frames_dropped_total{reason}     counter    frames not used, by reason (kernel: socket buffer full)
//	events_total                     counter    kernel neighbour events
//	event_resyncs_total              counter    times events were lost and the table read again
//	delay_source{source}             gauge      1 for what shows entries entering DELAY (tracepoints, poll, none), else 0
//	trace_events_total               counter    entries the neigh tracepoints showed entering DELAY
//	sightings_total                  counter    ARP from another MAC than a cached one
//	event_lag_seconds                histogram  from an event or sighting to the end of its check
//	check_errors_total               counter    checks that could not run
//	sweeps_total                     counter    sweeps started
//	sweep_duration_seconds           gauge      how long the latest sweep took
//	last_sweep_timestamp_seconds     gauge      when the latest sweep ended (Unix time; 0: none yet)
//
// They follow the naming of the metrics `arpcheck verify --format
// prometheus` writes for node_exporter's textfile collector, which
// describe one run: the same concept has the same name there without
// "watch_" and "_total" (arpcheck_peers{verdict},
// arpcheck_repair_actions{action}, arpcheck_frames_sent{kind},
// arpcheck_frames_received, arpcheck_frames_dropped{reason}), and the
// same labels and label values. A refusal is an action, not a repair:
// repair_actions_total{action="refused"} counts the entries arpcheck
// would have corrected but was not allowed to, each once (not at every
// check that finds it so again).
package watchmetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/watch"
)

// Source is what the collector reads: *watch.Watcher.
type Source interface {
	Stats() watch.Stats
}

// Collector is a prometheus.Collector of a Watcher's metrics.
type Collector struct {
	src   Source
	descs map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// The metrics: name, help and labels.
var metrics = []struct {
	name, help string
	labels     []string
}{
	{"peers", "Watched addresses by the verdict of their latest check, judged after its repair.", []string{"verdict"}},
	{"checks_total", "Addresses checked, by what asked for the check.", []string{"cause"}},
	{"repair_actions_total", "Repair actions on checked entries: replaced, healed and deleted changed the entry; " +
		"refused (not allowed: a conflict, or a PERMANENT entry without --include-permanent) and would-* (dry run) " +
		"changed nothing and are counted once per entry and situation.", []string{"action"}},
	{"frames_sent_total", "ARP requests sent by checks.", []string{"kind"}},
	{"replies_total", "ARP replies matched to a check.", nil},
	{"frames_received_total", "ARP frames received on the watched interfaces, other hosts' requests included.", nil},
	{"frames_dropped_total", "Received frames not used, by reason: kernel, the socket buffer was full; backlog, " +
		"too many sightings queued; unsolicited, replies to requests the watcher did not send (normal); " +
		"the others, malformed frames.", []string{"reason"}},
	{"events_total", "Kernel neighbour events received.", nil},
	{"event_resyncs_total", "Times neighbour events were lost and the table was read again.", nil},
	{"delay_source", "1 for what shows the watcher entries entering DELAY (a STALE entry's first use): the kernel's " +
		"neigh tracepoints, a read of the table every --poll, or none; 0 for the others.", []string{"source"}},
	{"trace_events_total", "Entries the kernel's neigh tracepoints showed entering DELAY.", nil},
	{"sightings_total", "ARP requests and announcements showing a watched address with another MAC than the cached one.", nil},
	{"event_lag_seconds", "Time from a kernel event or ARP sighting to the end of the check it asked for.", nil},
	{"check_errors_total", "Checks that could not run at all.", nil},
	{"sweeps_total", "Sweeps of every watched address started.", nil},
	{"sweep_duration_seconds", "How long the latest sweep took.", nil},
	{"last_sweep_timestamp_seconds", "When the latest sweep ended, in seconds since the Unix epoch; 0 before the first.", nil},
}

// New returns a Collector reading src at each scrape.
func New(src Source) *Collector {
	c := &Collector{src: src, descs: make(map[string]*prometheus.Desc, len(metrics))}
	for _, m := range metrics {
		c.descs[m.name] = prometheus.NewDesc("arpcheck_watch_"+m.name, m.help, m.labels, nil)
	}
	return c
}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// actions are the repair actions counted (every action but none).
var actions = []arpprobe.Action{arpprobe.ActionReplaced, arpprobe.ActionHealed, arpprobe.ActionDeleted,
	arpprobe.ActionWouldReplace, arpprobe.ActionWouldDelete, arpprobe.ActionRefused}

// Collect reads the Watcher's counters once and sends every metric.
// Labelled metrics have a series for every value, zeros included, so
// that alerts and rates work from the first scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}
	for _, v := range arpprobe.Verdicts {
		gauge("peers", float64(s.Entries[v]), string(v))
	}
	for _, cause := range watch.Causes {
		counter("checks_total", s.Checks[cause], string(cause))
	}
	for _, a := range actions {
		counter("repair_actions_total", s.Repairs[a], string(a))
	}
	counter("frames_sent_total", s.Frames.SentUnicast, "unicast")
	counter("frames_sent_total", s.Frames.SentBroadcast, "broadcast")
	counter("replies_total", s.Frames.Replies)
	counter("frames_received_total", s.Frames.Received)
	for r := arpprobe.DropReason(1); int(r) < len(s.Frames.Dropped); r++ {
		counter("frames_dropped_total", s.Frames.Dropped[r], r.String())
	}
	counter("frames_dropped_total", s.Frames.KernelDrops, "kernel")
	counter("frames_dropped_total", s.SightingsDropped, "backlog")
	counter("events_total", s.Events)
	counter("event_resyncs_total", s.Resyncs)
	for _, src := range watch.DelaySources {
		v := 0.0
		if src == s.DelaySource {
			v = 1
		}
		gauge("delay_source", v, string(src))
	}
	counter("trace_events_total", s.TraceEvents)
	counter("sightings_total", s.Sightings)
	buckets := make(map[float64]uint64, len(s.Lag.Bounds))
	var cum uint64
	for i, b := range s.Lag.Bounds {
		cum += s.Lag.Counts[i]
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.descs["event_lag_seconds"], s.Lag.Count, s.Lag.Sum.Seconds(), buckets)
	counter("check_errors_total", s.CheckErrors)
	counter("sweeps_total", s.Sweeps)
	gauge("sweep_duration_seconds", s.SweepDuration.Seconds())
	last := 0.0
	if !s.LastSweep.IsZero() {
		last = float64(s.LastSweep.UnixNano()) / 1e9
	}
	gauge("last_sweep_timestamp_seconds", last)
}
