package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/arpcheck/arpcheck/arpprobe"
)

func TestJSONSchema(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 1 {
		t.Errorf("JSON report has %d lines; want one object on one line", n)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("unmarshal %s: %v", b.String(), err)
	}
	// The contract's fields, exactly; extras are checked for presence only.
	for _, k := range []string{"version", "command", "duration_ms", "peers", "summary", "exit_code", "stats", "started"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, b.String())
		}
	}
	if got["version"] != 1.0 || got["command"] != "repair" || got["duration_ms"] != 1234.567 || got["exit_code"] != 3.0 {
		t.Errorf("version, command, duration_ms, exit_code = %v, %v, %v, %v; want 1, repair, 1234.567, 3",
			got["version"], got["command"], got["duration_ms"], got["exit_code"])
	}
	wantSummary := map[string]any{"checked": 7.0, "ok": 1.0, "stale": 1.0, "dead": 1.0, "conflict": 1.0,
		"uncached": 1.0, "offlink": 1.0, "unknown": 1.0, "repaired": 1.0, "deleted": 0.0}
	if !reflect.DeepEqual(got["summary"], wantSummary) {
		t.Errorf("summary = %v\nwant %v", got["summary"], wantSummary)
	}
	peers := got["peers"].([]any)
	if len(peers) != 7 {
		t.Fatalf("%d peers; want 7", len(peers))
	}
	contract := []string{"ip", "interface", "cached", "replies", "owner", "verdict", "action", "reason", "after"}
	for i, p := range peers {
		m := p.(map[string]any)
		for _, k := range contract {
			if _, ok := m[k]; !ok {
				t.Errorf("peer %d has no %q: %v", i, k, m)
			}
		}
	}
	stale := peers[1].(map[string]any)
	wantStale := map[string]any{
		"ip": "198.18.0.3", "interface": "lan0", "source": "198.18.0.1",
		"cached":  map[string]any{"mac": "02:00:00:00:00:99", "state": "STALE"},
		"replies": []any{map[string]any{"mac": "02:00:00:00:00:03", "unicast": false, "rtt_ms": 0.5, "count": 1.0}},
		"owner":   "02:00:00:00:00:03", "verdict": "stale", "action": "replaced", "reason": "",
		"after": map[string]any{"mac": "02:00:00:00:00:03", "state": "REACHABLE"},
	}
	if !reflect.DeepEqual(stale, wantStale) {
		t.Errorf("stale peer = %v\nwant %v", stale, wantStale)
	}
	conflict := peers[3].(map[string]any)
	if conflict["owner"] != nil || len(conflict["replies"].([]any)) != 2 || conflict["action"] != "refused" {
		t.Errorf("conflict peer = %v; want owner null, two replies, refused", conflict)
	}
	offlink := peers[5].(map[string]any)
	if iface, ok := offlink["interface"]; offlink["cached"] != nil || offlink["after"] != nil || offlink["owner"] != nil ||
		!ok || iface != nil || !reflect.DeepEqual(offlink["replies"], []any{}) || offlink["reason"] == "" {
		t.Errorf("offlink peer = %v; want cached, after, owner and interface null, replies [], a reason", offlink)
	}
	uncached := peers[4].(map[string]any)
	if !reflect.DeepEqual(uncached["cached"], map[string]any{"mac": "", "state": "FAILED"}) || uncached["after"] != nil {
		t.Errorf("uncached peer = %v; want cached FAILED without MAC, after null", uncached)
	}
	stats := got["stats"].(map[string]any)
	if d := stats["dropped"].(map[string]any); d["short"] != 1.0 || d["unsolicited"] != 2.0 || d["kernel"] != 3.0 ||
		stats["sent_unicast"] != 7.0 || stats["sent_broadcast"] != 4.0 {
		t.Errorf("stats = %v; want 7 unicast, 4 broadcast, dropped short 1, unsolicited 2, kernel 3", stats)
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name  string
		res   *result
		quiet bool
		want  string
	}{
		{name: "repair, every verdict", res: sampleResult(), want: `` +
			"IP           INTERFACE  CACHED                       REPLIES                              VERDICT   ACTION    AFTER                        REASON\n" +
			"198.18.0.2   lan0       02:00:00:00:00:02 REACHABLE  02:00:00:00:00:02                    ok        none      02:00:00:00:00:02 REACHABLE\n" +
			"198.18.0.3   lan0       02:00:00:00:00:99 STALE      02:00:00:00:00:03                    stale     replaced  02:00:00:00:00:03 REACHABLE\n" +
			"198.18.0.4   lan0       02:00:00:00:00:98 STALE      -                                    dead      none      02:00:00:00:00:98 STALE\n" +
			"198.18.0.5   lan0       02:00:00:00:00:05 REACHABLE  02:00:00:00:00:05,02:00:00:00:00:06  conflict  refused   02:00:00:00:00:05 REACHABLE  conflict: 2 MACs answer for 198.18.0.5; not choosing one\n" +
			"198.18.0.6   lan0       FAILED                       02:00:00:00:00:07                    uncached  none      -\n" +
			"198.19.17.9  -          -                            -                                    offlink   none      -                            reached through gateway 198.18.0.254 (route 0.0.0.0/0)\n" +
			"198.18.0.7   lan0       -                            -                                    unknown   none      -                            deadline exceeded before the peer was checked\n" +
			"7 peers checked in 1.23s: 1 ok, 1 stale (1 repaired), 1 dead, 1 conflict, 1 uncached, 1 offlink, 1 unknown; 1 replaced, 1 refused\n"},
		{name: "quiet: problems and actions only", res: sampleResult(), quiet: true, want: `` +
			"IP          INTERFACE  CACHED                       REPLIES                              VERDICT   ACTION    AFTER                        REASON\n" +
			"198.18.0.3  lan0       02:00:00:00:00:99 STALE      02:00:00:00:00:03                    stale     replaced  02:00:00:00:00:03 REACHABLE\n" +
			"198.18.0.4  lan0       02:00:00:00:00:98 STALE      -                                    dead      none      02:00:00:00:00:98 STALE\n" +
			"198.18.0.5  lan0       02:00:00:00:00:05 REACHABLE  02:00:00:00:00:05,02:00:00:00:00:06  conflict  refused   02:00:00:00:00:05 REACHABLE  conflict: 2 MACs answer for 198.18.0.5; not choosing one\n" +
			"198.18.0.7  lan0       -                            -                                    unknown   none      -                            deadline exceeded before the peer was checked\n" +
			"7 peers checked in 1.23s: 1 ok, 1 stale (1 repaired), 1 dead, 1 conflict, 1 uncached, 1 offlink, 1 unknown; 1 replaced, 1 refused\n"},
		{name: "verify, all well", res: healthyResult(), want: `` +
			"IP           INTERFACE  CACHED                       REPLIES            VERDICT   ACTION  REASON\n" +
			"198.18.0.2   lan0       02:00:00:00:00:02 REACHABLE  02:00:00:00:00:02  ok        none\n" +
			"198.18.0.6   lan0       FAILED                       02:00:00:00:00:07  uncached  none\n" +
			"198.19.17.9  -          -                            -                  offlink   none    reached through gateway 198.18.0.254 (route 0.0.0.0/0)\n" +
			"3 peers checked in 1.23s: 1 ok, 1 uncached, 1 offlink\n"},
		{name: "quiet and all well: nothing", res: healthyResult(), quiet: true, want: ""},
		{name: "no peers", res: &result{command: "verify", report: &arpprobe.Report{Duration: 1500 * time.Microsecond}},
			want: "0 peers checked in 1.5ms\n"},
		{name: "no peers, quickly", res: &result{command: "verify", report: &arpprobe.Report{Duration: 850 * time.Microsecond}},
			want: "0 peers checked in 850µs\n"},
		{name: "dry run", res: dryRun(), want: "" +
			"IP          INTERFACE  CACHED                   REPLIES            VERDICT  ACTION         AFTER                    REASON\n" +
			"198.18.0.3  lan0       02:00:00:00:00:99 STALE  02:00:00:00:00:03  stale    would-replace  02:00:00:00:00:99 STALE\n" +
			"1 peer checked in 1.23s: 1 stale (0 repaired); 1 would-replace (dry run: nothing changed)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeText(&b, tt.res, tt.quiet); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// dryRun is a dry repair of one stale peer.
func dryRun() *result {
	res := sampleResult()
	p := res.report.Peers[1]
	p.Action, p.After = arpprobe.ActionWouldReplace, p.Cached
	res.report.Peers = []arpprobe.Peer{p}
	res.report.Summary = arpprobe.Summary{Checked: 1, Stale: 1}
	res.dryRun, res.status = true, exitStatus(res.report.Peers)
	return res
}

func TestNagios(t *testing.T) {
	many := healthyResult()
	for i := 0; i < maxNagiosPeers+2; i++ {
		p := sampleResult().report.Peers[2] // dead
		p.IP = netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})
		many.report.Peers = append(many.report.Peers, p)
	}
	many.report.Summary.Checked, many.report.Summary.Dead = 3+maxNagiosPeers+2, maxNagiosPeers+2
	many.status = exitStatus(many.report.Peers)
	var manyLines []string
	for i := 0; i < maxNagiosPeers; i++ {
		manyLines = append(manyLines, fmt.Sprintf("dead 198.18.1.%d on lan0: cached 02:00:00:00:00:98 STALE, no answer", i))
	}
	deleted := sampleResult()
	deleted.report.Peers = deleted.report.Peers[:3]
	deleted.report.Peers[2].Action, deleted.report.Peers[2].After = arpprobe.ActionDeleted, nil
	deleted.report.Summary = arpprobe.Summary{Checked: 3, OK: 1, Stale: 1, Dead: 1, Repaired: 1, Deleted: 1}
	deleted.status = exitStatus(deleted.report.Peers)
	noRepair := sampleResult()
	noRepair.report.Peers = noRepair.report.Peers[:2]
	noRepair.report.Peers[1].Action = arpprobe.ActionNone
	noRepair.report.Summary = arpprobe.Summary{Checked: 2, OK: 1, Stale: 1}
	noRepair.status, noRepair.err = exitUnknown, errors.New("write failed: operation not permitted\nrepair needs CAP_NET_ADMIN")
	tests := []struct {
		name  string
		res   *result
		want  []string
		lines int // of the output; 0: len(want)
	}{
		{name: "unknown", res: sampleResult(), want: []string{
			"ARPCHECK UNKNOWN - 1 unknown, 1 conflict, 1 dead left; 7 peers checked, 1 repaired | checked=7;;;0 ok=1;;;0 " +
				"stale=0;0;0;0 dead=1;0;;0 conflict=1;0;0;0 uncached=1;;;0 offlink=1;;;0 unknown=1;;;0 repaired=1;;;0 deleted=0;;;0 duration=1.235s;;;0",
			"unknown 198.18.0.7 on lan0: deadline exceeded before the peer was checked",
			"conflict 198.18.0.5 on lan0: cached 02:00:00:00:00:05 REACHABLE, answered by 02:00:00:00:00:05 02:00:00:00:00:06; " +
				"refused (conflict: 2 MACs answer for 198.18.0.5; not choosing one)",
			"dead 198.18.0.4 on lan0: cached 02:00:00:00:00:98 STALE, no answer",
			"stale 198.18.0.3 on lan0: cached 02:00:00:00:00:99 STALE, answered by 02:00:00:00:00:03; replaced",
		}},
		{name: "ok", res: healthyResult(), want: []string{"ARPCHECK OK - 3 peers checked | checked=3;;;0 ok=1;;;0 stale=0;0;0;0 dead=0;0;;0 " +
			"conflict=0;0;0;0 uncached=1;;;0 offlink=1;;;0 unknown=0;;;0 repaired=0;;;0 deleted=0;;;0 duration=1.235s;;;0"}},
		{name: "critical, dry run", res: dryRun(), want: []string{
			"ARPCHECK CRITICAL - 1 stale left; 1 peer checked (dry run: nothing changed) | checked=1;;;0 ok=0;;;0 stale=1;0;0;0 " +
				"dead=0;0;;0 conflict=0;0;0;0 uncached=0;;;0 offlink=0;;;0 unknown=0;;;0 repaired=0;;;0 deleted=0;;;0 duration=1.235s;;;0",
			"stale 198.18.0.3 on lan0: cached 02:00:00:00:00:99 STALE, answered by 02:00:00:00:00:03; would-replace",
		}},
		{name: "deleted by --delete-dead, repaired: OK", res: deleted, want: []string{
			"ARPCHECK OK - 3 peers checked, 1 repaired, 1 deleted | checked=3;;;0 ok=1;;;0 stale=0;0;0;0 dead=0;0;;0 " +
				"conflict=0;0;0;0 uncached=0;;;0 offlink=0;;;0 unknown=0;;;0 repaired=1;;;0 deleted=1;;;0 duration=1.235s;;;0",
			"stale 198.18.0.3 on lan0: cached 02:00:00:00:00:99 STALE, answered by 02:00:00:00:00:03; replaced",
			"dead 198.18.0.4 on lan0: cached 02:00:00:00:00:98 STALE, no answer; deleted",
		}},
		{name: "repair failed: the error first in the long output", res: noRepair, want: []string{
			"ARPCHECK UNKNOWN - 1 stale left; 2 peers checked | checked=2;;;0 ok=1;;;0 stale=1;0;0;0 dead=0;0;;0 " +
				"conflict=0;0;0;0 uncached=0;;;0 offlink=0;;;0 unknown=0;;;0 repaired=0;;;0 deleted=0;;;0 duration=1.235s;;;0",
			"write failed: operation not permitted; repair needs CAP_NET_ADMIN",
			"stale 198.18.0.3 on lan0: cached 02:00:00:00:00:99 STALE, answered by 02:00:00:00:00:03",
		}},
		{name: "warning, many peers: a short first line, the list cut", res: many, lines: 1 + maxNagiosPeers + 1, want: append(append([]string{
			"ARPCHECK WARNING - 52 dead; 55 peers checked | checked=55;;;0 ok=1;;;0 stale=0;0;0;0 dead=52;0;;0 " +
				"conflict=0;0;0;0 uncached=1;;;0 offlink=1;;;0 unknown=0;;;0 repaired=0;;;0 deleted=0;;;0 duration=1.235s;;;0"},
			manyLines...), "... and 2 more")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeNagios(&b, tt.res); err != nil {
				t.Fatal(err)
			}
			if got, want := b.String(), strings.Join(tt.want, "\n")+"\n"; got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			first, _, _ := strings.Cut(b.String(), " | ")
			if len(first) > 120 || strings.Contains(first, "198.") {
				t.Errorf("first line's text is %d characters: %q; want status and counts only", len(first), first)
			}
		})
	}
}

func TestNagiosError(t *testing.T) {
	var b bytes.Buffer
	err := errors.New("arpprobe: listen on lan0: raw sockets need CAP_NET_RAW: operation not permitted\nprobing needs CAP_NET_RAW; a|b")
	if werr := writeNagiosError(&b, err); werr != nil {
		t.Fatal(werr)
	}
	want := "ARPCHECK UNKNOWN - listen on lan0: raw sockets need CAP_NET_RAW: operation not permitted; probing needs CAP_NET_RAW; a/b\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
}

// parseMetrics parses the text exposition format as Prometheus does.
func parseMetrics(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, b)
	}
	return mfs
}

// metricValue returns the value of the series of family name whose
// labels include labels, and whether there is one.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := make(map[string]string)
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func TestPrometheus(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 1, 500_000_000, time.UTC)
	var b bytes.Buffer
	if err := writePrometheus(&b, sampleResult(), now); err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, b.Bytes())
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"arpcheck_exit_code", nil, 3},
		{"arpcheck_last_run_timestamp_seconds", nil, float64(now.Unix()) + 0.5},
		{"arpcheck_run_duration_seconds", nil, 1.234567},
		{"arpcheck_peers_checked", nil, 7},
		{"arpcheck_peers", map[string]string{"verdict": "stale", "command": "repair"}, 1},
		{"arpcheck_peers", map[string]string{"verdict": "unknown"}, 1},
		{"arpcheck_peers_repaired", nil, 1},
		{"arpcheck_repair_actions", map[string]string{"action": "replaced"}, 1},
		{"arpcheck_repair_actions", map[string]string{"action": "refused"}, 1},
		{"arpcheck_repair_actions", map[string]string{"action": "deleted"}, 0},
		{"arpcheck_peer_verdict", map[string]string{"ip": "198.18.0.3", "interface": "lan0", "verdict": "stale"}, 1},
		{"arpcheck_peer_verdict", map[string]string{"ip": "198.19.17.9", "interface": "", "verdict": "offlink"}, 1},
		{"arpcheck_frames_sent", map[string]string{"kind": "unicast"}, 7},
		{"arpcheck_frames_sent", map[string]string{"kind": "broadcast"}, 4},
		{"arpcheck_frames_received", nil, 9},
		{"arpcheck_frames_dropped", map[string]string{"reason": "unsolicited"}, 2},
		{"arpcheck_frames_dropped", map[string]string{"reason": "kernel"}, 3},
		{"arpcheck_build_info", map[string]string{"version": versionString()}, 1},
	}
	for _, tt := range tests {
		got, ok := metricValue(mfs, tt.name, tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v); want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if n := len(mfs["arpcheck_peer_verdict"].GetMetric()); n != 7 {
		t.Errorf("%d arpcheck_peer_verdict series; want one per peer, 7", n)
	}
	if n := len(mfs["arpcheck_peers"].GetMetric()); n != len(arpprobe.Verdicts) {
		t.Errorf("%d arpcheck_peers series; want one per verdict, %d", n, len(arpprobe.Verdicts))
	}
	for name, mf := range mfs {
		if mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q; want a gauge with help", name, mf.GetType(), mf.GetHelp())
		}
	}
}

func TestPrometheusError(t *testing.T) {
	var b bytes.Buffer
	if err := writePrometheusError(&b, "verify", time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, b.Bytes())
	if v, ok := metricValue(mfs, "arpcheck_exit_code", map[string]string{"command": "verify"}); !ok || v != 3 {
		t.Errorf("arpcheck_exit_code = %v, %v; want 3", v, ok)
	}
	if v, ok := metricValue(mfs, "arpcheck_last_run_timestamp_seconds", nil); !ok || v != 1700000000 {
		t.Errorf("arpcheck_last_run_timestamp_seconds = %v, %v; want 1700000000", v, ok)
	}
	if _, ok := mfs["arpcheck_peer_verdict"]; ok {
		t.Errorf("a run that could not check reports peers:\n%s", b.String())
	}
}

func TestEmit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "arpcheck.prom")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := emit(nil, path, writeBytes([]byte("new\n"))); err != nil {
		t.Fatalf("emit: %v", err)
	}
	b, err := os.ReadFile(path)
	fi, serr := os.Stat(path)
	if err != nil || serr != nil || string(b) != "new\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("after emit: %q, mode %v (%v, %v); want \"new\\n\", 0644", b, fi.Mode(), err, serr)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"arpcheck.prom"}) {
		t.Errorf("directory holds %v; want only arpcheck.prom (no temporary file left)", names)
	}
	if err := emit(nil, filepath.Join(dir, "missing", "x.prom"), writeBytes([]byte("x"))); err == nil {
		t.Error("emit into a missing directory succeeded")
	}
	var out bytes.Buffer
	if err := emit(&out, "", writeBytes([]byte("to stdout\n"))); err != nil || out.String() != "to stdout\n" {
		t.Errorf("emit to stdout: %q, %v", out.String(), err)
	}
}
