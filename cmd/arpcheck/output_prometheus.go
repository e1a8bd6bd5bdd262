package main

import (
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// The metrics of the prometheus format, for node_exporter's textfile
// collector. Every run writes all of them, so a series never lingers
// from an earlier run.
type metrics struct {
	reg       *prometheus.Registry
	exitCode  prometheus.Gauge
	lastRun   prometheus.Gauge
	duration  prometheus.Gauge
	checked   prometheus.Gauge
	peers     *prometheus.GaugeVec // by verdict
	repaired  prometheus.Gauge
	actions   *prometheus.GaugeVec // by action
	peer      *prometheus.GaugeVec // by ip, interface, verdict
	sent      *prometheus.GaugeVec // by kind
	received  prometheus.Gauge
	dropped   *prometheus.GaugeVec // by reason
	buildInfo prometheus.Gauge
}

func newMetrics(command string) *metrics {
	labels := prometheus.Labels{"command": command}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	vec := func(name, help string, l ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, l)
	}
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		exitCode:  gauge("arpcheck_exit_code", "Exit status of the last run: 0 ok, 1 dead peers, 2 stale or conflicting peers, 3 could not check."),
		lastRun:   gauge("arpcheck_last_run_timestamp_seconds", "When the last run ended, in seconds since the Unix epoch."),
		duration:  gauge("arpcheck_run_duration_seconds", "How long the last run took."),
		checked:   gauge("arpcheck_peers_checked", "Peers checked by the last run."),
		peers:     vec("arpcheck_peers", "Peers by verdict in the last run.", "verdict"),
		repaired:  gauge("arpcheck_peers_repaired", "Stale peers whose entry was replaced or found healed."),
		actions:   vec("arpcheck_repair_actions", "Peers by repair action in the last run (none omitted).", "action"),
		peer:      vec("arpcheck_peer_verdict", "1 for each peer of the last run, labelled with its verdict.", "ip", "interface", "verdict"),
		sent:      vec("arpcheck_frames_sent", "ARP requests sent by the last run.", "kind"),
		received:  gauge("arpcheck_frames_received", "Frames received by the last run that passed the socket filter."),
		dropped:   vec("arpcheck_frames_dropped", "Frames of the last run not used, by reason (kernel: the socket buffer was full).", "reason"),
		buildInfo: buildInfoMetric(command),
	}
	m.reg.MustRegister(m.exitCode, m.lastRun, m.duration, m.checked, m.peers, m.repaired, m.actions,
		m.peer, m.sent, m.received, m.dropped, m.buildInfo)
	return m
}

// buildInfoMetric returns arpcheck_build_info, 1, labelled with the
// command that exports it (verify, repair, watch) and the version: the
// one metric of the same name in the textfile and in watch's /metrics.
func buildInfoMetric(command string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "arpcheck_build_info",
		Help:        "Version of arpcheck that exports these metrics; always 1.",
		ConstLabels: prometheus.Labels{"command": command, "version": versionString()}})
	g.Set(1)
	return g
}

// encode writes the registry's metrics in the text exposition format.
func (m *metrics) encode(w io.Writer) error {
	mfs, err := m.reg.Gather()
	if err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("prometheus: %w", err)
		}
	}
	return nil
}

// writePrometheus writes a run's report as metrics; now is the time of
// the last-run timestamp.
func writePrometheus(w io.Writer, res *result, now time.Time) error {
	rep := res.report
	m := newMetrics(res.command)
	m.exitCode.Set(float64(res.status))
	m.lastRun.Set(float64(now.UnixMilli()) / 1e3)
	m.duration.Set(rep.Duration.Seconds())
	m.checked.Set(float64(rep.Summary.Checked))
	for _, v := range arpprobe.Verdicts {
		m.peers.WithLabelValues(string(v)).Set(float64(rep.Summary.Count(v)))
	}
	m.repaired.Set(float64(rep.Summary.Repaired))
	if res.command == "repair" {
		for _, a := range []arpprobe.Action{arpprobe.ActionReplaced, arpprobe.ActionHealed, arpprobe.ActionDeleted,
			arpprobe.ActionWouldReplace, arpprobe.ActionWouldDelete, arpprobe.ActionRefused} {
			m.actions.WithLabelValues(string(a)).Set(0)
		}
	}
	for i := range rep.Peers {
		p := &rep.Peers[i]
		if p.Action != arpprobe.ActionNone && p.Action != "" {
			m.actions.WithLabelValues(string(p.Action)).Add(1)
		}
		m.peer.WithLabelValues(p.IP.String(), p.Interface, string(p.Verdict)).Set(1)
	}
	st := &rep.Stats
	m.sent.WithLabelValues("unicast").Set(float64(st.SentUnicast))
	m.sent.WithLabelValues("broadcast").Set(float64(st.SentBroadcast))
	m.received.Set(float64(st.Received))
	for reason, n := range droppedByReason(st) {
		m.dropped.WithLabelValues(reason).Set(float64(n))
	}
	return m.encode(w)
}

// writePrometheusError writes the metrics of a run that could not
// check: exit code 3 and the time, and no peers, so an alert on
// arpcheck_exit_code fires instead of old numbers looking current.
func writePrometheusError(w io.Writer, command string, now time.Time) error {
	m := newMetrics(command)
	m.exitCode.Set(exitUnknown)
	m.lastRun.Set(float64(now.UnixMilli()) / 1e3)
	return m.encode(w)
}
