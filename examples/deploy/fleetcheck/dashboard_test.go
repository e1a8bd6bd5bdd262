package fleetcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/arpcheck/arpcheck/internal/proctest"
)

// dashboardFile is the Grafana dashboard, the one place its queries and
// so the metric names it reads are written.
const dashboardFile = "../grafana/arpcheck.json"

// grafanaDashboard is as much of a dashboard's JSON as the tests read.
type grafanaDashboard struct {
	Title  string         `json:"title"`
	Panels []grafanaPanel `json:"panels"`
	// Templating holds the dashboard's variables.
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Title   string          `json:"title"`
	Type    string          `json:"type"`
	Panels  []grafanaPanel  `json:"panels"` // a collapsed row's panels
	Targets []grafanaTarget `json:"targets"`
}

type grafanaTarget struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

type grafanaVariable struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Query is a string, or an object with a query field (Grafana 9+).
	Query json.RawMessage `json:"query"`
}

// dashboardQuery is one PromQL query of the dashboard and where it is.
type dashboardQuery struct {
	where string // panel "Title" A, variable node
	expr  string // as written, Grafana variables and all
}

// labelValues is a query variable's label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardQueries returns every PromQL query of a dashboard: each
// panel's targets (rows' nested panels too) and each query variable,
// label_values(selector, label) read as selector{label=~".+"}, so that
// the label is checked as well.
func dashboardQueries(data []byte) ([]dashboardQuery, error) {
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var qs []dashboardQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				qs = append(qs, dashboardQuery{where: fmt.Sprintf("panel %q query %s", p.Title, t.RefID), expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct{ Query string }
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("variable %s: query is neither a string nor an object: %s", v.Name, v.Query)
			}
			q = obj.Query
		}
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			return nil, fmt.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q)
		}
		sel := strings.TrimSpace(m[1])
		if strings.HasSuffix(sel, "}") {
			sel = strings.TrimSuffix(sel, "}") + `, ` + m[2] + `=~".+"}`
		} else {
			sel += `{` + m[2] + `=~".+"}`
		}
		qs = append(qs, dashboardQuery{where: "variable " + v.Name, expr: sel})
	}
	return qs, nil
}

// grafanaVar is a variable reference: $name, ${name} or ${name:format}, or [[name]].
var grafanaVar = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?::[a-z]+)?\}|\$([a-zA-Z0-9_]+)|\[\[([a-zA-Z0-9_]+)\]\]`)

// expandGrafana replaces Grafana's variables as Grafana would before
// sending a query: its own interval variables by durations, and the
// dashboard's variables (multi-value, "All" = .*) by .* — the query
// must use them inside a regex matcher. Any other variable is an error.
func expandGrafana(expr string, dashVars []string) (string, error) {
	builtin := map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "6h", "__range_s": "21600"}
	var err error
	out := grafanaVar.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVar.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := builtin[name]; ok {
			return v
		}
		if slices.Contains(dashVars, name) {
			return ".*"
		}
		err = fmt.Errorf("unknown variable %s", ref)
		return ref
	})
	return out, err
}

// parseDashboard parses every query of a dashboard with Prometheus's
// PromQL parser, after expanding Grafana's variables, and returns them
// with their selectors as the alert checks take them, and what is wrong.
func parseDashboard(data []byte) ([]alertRule, []string) {
	qs, err := dashboardQueries(data)
	if err != nil {
		return nil, []string{err.Error()}
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, []string{err.Error()}
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	p := parser.NewParser(parser.Options{})
	var out []alertRule
	var problems []string
	for _, q := range qs {
		text, err := expandGrafana(q.expr, vars)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", q.where, err))
			continue
		}
		expr, err := p.ParseExpr(text)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: PromQL %q: %v", q.where, text, err))
			continue
		}
		r := selectorsOf(q.where, expr)
		r.kind = "dashboard"
		out = append(out, r)
	}
	return out, problems
}

// readDashboard returns the dashboard's queries, parsed; any problem
// fails the test.
func readDashboard(t *testing.T) []alertRule {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	qs, problems := parseDashboard(data)
	for _, p := range problems {
		t.Errorf("%s: %s", dashboardFile, p)
	}
	if len(qs) == 0 {
		t.Fatalf("%s has no query", dashboardFile)
	}
	return qs
}

// The dashboard's queries all parse as PromQL; counters are read only
// through rate or increase; and the promised views are there: stale
// entries and repairs per node, conflicts, the time from event to
// repair, dropped frames and the detection source, for watch and (but
// the last two) for the timer's textfile metrics.
func TestDashboardQueries(t *testing.T) {
	qs := readDashboard(t)
	for _, q := range qs {
		for _, vs := range q.selectors {
			counter := strings.HasSuffix(vs.Name, "_total") || strings.HasSuffix(vs.Name, "_bucket")
			if counter && !q.inRate[vs] {
				t.Errorf("%s reads the counter %s outside rate or increase", q.name, vs.Name)
			}
		}
	}
	uses := func(metric, label, value string, by []string) bool {
		return slices.ContainsFunc(qs, func(q alertRule) bool {
			return slices.ContainsFunc(q.selectors, func(vs *parser.VectorSelector) bool {
				if vs.Name != metric {
					return false
				}
				if label != "" && !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == label && m.Matches(value) }) {
					return false
				}
				return !slices.ContainsFunc(by, func(l string) bool { return !keepsLabel(q.expr, l) })
			})
		})
	}
	promised := []struct {
		desc                 string
		metric, label, value string   // label "": any series
		by                   []string // labels the result keeps
	}{
		{"watch: stale entries per node", "arpcheck_watch_peers", "verdict", "stale", []string{"instance"}},
		{"watch: repairs per node", "arpcheck_watch_repair_actions_total", "action", "replaced", []string{"instance", "action"}},
		{"watch: conflicts", "arpcheck_watch_peers", "verdict", "conflict", nil},
		{"watch: time from event to repair", "arpcheck_watch_event_lag_seconds_bucket", "", "", []string{"le"}},
		{"watch: dropped frames per node", "arpcheck_watch_frames_dropped_total", "reason", "kernel", []string{"instance", "reason"}},
		{"watch: which detection source asks for checks", "arpcheck_watch_checks_total", "", "", []string{"cause"}},
		{"textfile: stale peers per node", "arpcheck_peers", "verdict", "stale", []string{"instance"}},
		{"textfile: repairs per node", "arpcheck_repair_actions", "action", "replaced", []string{"instance", "action"}},
		{"textfile: conflicts", "arpcheck_peers", "verdict", "conflict", nil},
		{"textfile: dropped frames per node", "arpcheck_frames_dropped", "reason", "kernel", []string{"instance", "reason"}},
	}
	for _, p := range promised {
		if !uses(p.metric, p.label, p.value, p.by) {
			t.Errorf("no panel shows %s (%s{%s=%q}, by %q)", p.desc, p.metric, p.label, p.value, p.by)
		}
	}
}

// keepsLabel reports whether an expression's result keeps a label: every
// aggregation in it is by that label.
func keepsLabel(expr parser.Expr, label string) bool {
	keeps := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if a, ok := n.(*parser.AggregateExpr); ok && (a.Without || !slices.Contains(a.Grouping, label)) {
			keeps = false
		}
		return nil
	})
	return keeps
}

// The extraction finds nested panels and variables, and the checks
// find what is wrong in a query.
func TestDashboardChecksFind(t *testing.T) {
	fams := seriesFamilies(watchFamilies(t))
	tests := []struct {
		desc, json, want string
	}{
		{"unknown variable",
			`{"panels":[{"title":"P","targets":[{"refId":"A","expr":"arpcheck_watch_peers{instance=~\"$host\"}"}]}]}`,
			"unknown variable $host"},
		{"not PromQL",
			`{"panels":[{"title":"P","targets":[{"refId":"A","expr":"sum by instance (arpcheck_watch_peers)"}]}]}`,
			"PromQL"},
		{"misspelt metric in a collapsed row",
			`{"panels":[{"type":"row","panels":[{"title":"P","targets":[{"refId":"A","expr":"arpcheck_watch_entrys"}]}]}]}`,
			"does not export"},
		{"label a variable reads is missing",
			`{"templating":{"list":[{"name":"v","type":"query","query":{"query":"label_values(arpcheck_watch_peers, node)"}}]}}`,
			"has no label node"},
		{"histogram bucket label value",
			`{"panels":[{"title":"P","targets":[{"refId":"A","expr":"rate(arpcheck_watch_event_lag_seconds_bucket{le=\"7\"}[$__rate_interval])"}]}]}`,
			`has no value "7"`},
	}
	for _, tt := range tests {
		qs, problems := parseDashboard([]byte(tt.json))
		got := strings.Join(append(problems, selectorProblems("test", qs, fams)...), "\n")
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: reported %q; want %q", tt.desc, got, tt.want)
		}
	}
}

// seriesFamilies returns fams with each histogram also as the series
// PromQL selects: NAME_bucket (with le), NAME_sum and NAME_count.
func seriesFamilies(fams map[string]*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := make(map[string]*dto.MetricFamily, len(fams))
	for name, f := range fams {
		out[name] = f
		if f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		bucket, sum, count := &dto.MetricFamily{}, &dto.MetricFamily{}, &dto.MetricFamily{}
		for _, m := range f.GetMetric() {
			le := func(v string) *dto.Metric {
				l := slices.Clone(m.GetLabel())
				l = append(l, &dto.LabelPair{Name: new("le"), Value: new(v)})
				return &dto.Metric{Label: l}
			}
			for _, b := range m.GetHistogram().GetBucket() {
				bucket.Metric = append(bucket.Metric, le(model.SampleValue(b.GetUpperBound()).String()))
			}
			bucket.Metric = append(bucket.Metric, le("+Inf"))
			sum.Metric = append(sum.Metric, &dto.Metric{Label: m.GetLabel()})
			count.Metric = append(count.Metric, &dto.Metric{Label: m.GetLabel()})
		}
		out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = bucket, sum, count
	}
	return out
}

// exposedMetrics runs the arpcheck of the container image on a LAN of
// network namespaces, with one entry right and one stale, as a fleet's
// nodes run it: verify and repair with --format prometheus (what
// node_exporter's textfile collector reads), then watch --repair
// --listen, scraped once it has repaired a stale entry. It returns every
// metric family they wrote, parsed by Prometheus's own parser.
func exposedMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	bin := builtImage(t).path
	lan := netns.NewLANT(t, lanPrefix, peerA, peerB)
	seed := func() {
		t.Helper()
		for _, s := range []struct {
			ip  netip.Addr
			mac net.HardwareAddr
		}{{peerA, netns.HostMAC(1)}, {peerB, oldMAC}} {
			if err := lan.Prober.AddNeigh(netns.LANIface, s.ip, s.mac, netlink.NUD_STALE, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	fams := map[string]*dto.MetricFamily{}
	add := func(source, text string) {
		t.Helper()
		p := expfmt.NewTextParser(model.UTF8Validation)
		got, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%s: Prometheus's parser says: %v\n%s", source, err, text)
		}
		for name, f := range got {
			if old, ok := fams[name]; ok {
				old.Metric = append(old.Metric, f.Metric...)
			} else {
				fams[name] = f
			}
		}
	}

	// The timer's runs. Neither waits for anything but its replies.
	for _, run := range []struct {
		command string
		status  int // verify finds the stale entry; repair replaces it
	}{{"verify", 2}, {"repair", 0}} {
		seed()
		cmd := exec.Command(bin, run.command, "--format", "prometheus", peerA.String(), peerB.String())
		var stdout, stderr proctest.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := lan.Prober.Do(cmd.Run)
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if got := cmd.ProcessState.ExitCode(); got != run.status {
			t.Fatalf("arpcheck %s: exit %d; want %d\n%s", run.command, got, run.status, stderr.String())
		}
		add("arpcheck "+run.command+" --format prometheus", stdout.String())
	}

	// watch, until it has repaired the stale entry.
	seed()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "watch", "--repair", "--listen", "127.0.0.1:9808")
	var stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := lan.Prober.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("arpcheck watch after SIGTERM: %v; want exit status 0\n%s", err, stderr.String())
		}
	}()
	get := proctest.Getter(lan.Prober)
	// Replaced, or healed: the kernel itself takes the owner's MAC from a
	// reply that comes more than locktime (1 s) after the entry was seeded.
	repaired := regexp.MustCompile(`(?m)^arpcheck_watch_repair_actions_total\{action="(replaced|healed)"\} [1-9]`)
	var body string
	proctest.WaitFor(t, 20*time.Second, "arpcheck watch's /metrics counting the repair", func() (bool, string) {
		status, b, err := get("http://127.0.0.1:9808/metrics")
		body = b
		return status == http.StatusOK && repaired.MatchString(b),
			fmt.Sprintf("%d %v\n%s", status, err, stderr.String())
	})
	add("arpcheck watch's /metrics", body)
	return fams
}

// Every metric, label and label value the dashboard selects is one that
// arpcheck really exposes: watch's /metrics, or the textfile metrics of
// verify and repair, as written by the binary on a namespace LAN. A
// metric renamed in the code, and not in the dashboard, fails here.
func TestDashboardMetricsExposed(t *testing.T) {
	qs := readDashboard(t)
	fams := seriesFamilies(exposedMetrics(t))
	for _, p := range selectorProblems("arpcheck watch, verify or repair", qs, fams) {
		t.Error(p)
	}
}
