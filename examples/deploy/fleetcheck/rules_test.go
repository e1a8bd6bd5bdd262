package fleetcheck

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/arpcheck/arpcheck/arpprobe/watch"
	"github.com/arpcheck/arpcheck/arpprobe/watchmetrics"
)

// alertRule is one alert of prometheusrule.yaml, its expression parsed.
type alertRule struct {
	name      string
	kind      string // "" for an alert; "dashboard" for a dashboard's query
	rule      monitoringv1.Rule
	expr      parser.Expr
	selectors []*parser.VectorSelector
	// counters are the selectors of counters, each with whether it is
	// inside rate, irate or increase.
	inRate map[*parser.VectorSelector]bool
}

// String names the rule in messages: alert NAME, or the dashboard
// query's place.
func (a alertRule) String() string {
	if a.kind == "" {
		return "alert " + a.name
	}
	return a.name
}

// selectorsOf returns expr with its selectors, each marked with whether
// it is inside rate, irate or increase.
func selectorsOf(name string, expr parser.Expr) alertRule {
	a := alertRule{name: name, expr: expr, inRate: map[*parser.VectorSelector]bool{}}
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		a.selectors = append(a.selectors, vs)
		a.inRate[vs] = slices.ContainsFunc(path, func(n parser.Node) bool {
			c, ok := n.(*parser.Call)
			return ok && slices.Contains([]string{"rate", "irate", "increase"}, c.Func.Name)
		})
		return nil
	})
	return a
}

// loadRules checks rule groups as Prometheus loads a rule file: the
// YAML (no unknown field), every expression with Prometheus's PromQL
// parser, every label and annotation as a template, durations, names.
func loadRules(groups []monitoringv1.RuleGroup) []error {
	// The PrometheusRule's spec is a rule file's content; the operator
	// writes it out so for Prometheus.
	y, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		return []error{err}
	}
	_, errs := rulefmt.Parse(y, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	return errs
}

// alertRules returns the alerts of prometheusrule.yaml, checked by
// Prometheus's rule loader.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	pr := only[*monitoringv1.PrometheusRule](t, "prometheusrule.yaml", manifests(t, "prometheusrule.yaml"))
	if errs := loadRules(pr.Spec.Groups); len(errs) > 0 {
		t.Fatalf("prometheusrule.yaml: Prometheus would not load the rules: %v", errs)
	}
	p := parser.NewParser(parser.Options{})
	var rules []alertRule
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			expr, err := p.ParseExpr(r.Expr.String())
			if err != nil {
				t.Fatalf("alert %s: %v", r.Alert, err) // loadRules has said so already
			}
			a := selectorsOf(r.Alert, expr)
			a.rule = r
			rules = append(rules, a)
		}
	}
	return rules
}

// The rule loader used here rejects what Prometheus rejects.
func TestLoadRulesRejects(t *testing.T) {
	ok := monitoringv1.Rule{Alert: "A", Annotations: map[string]string{"summary": "{{ $labels.instance }}"}}
	tests := []struct {
		desc    string
		change  func(r *monitoringv1.Rule)
		wantErr string // "" for none
	}{
		{desc: "valid", change: func(r *monitoringv1.Rule) {}},
		{desc: "expression cut short", change: func(r *monitoringv1.Rule) { r.Expr.StrVal = "up ==" }, wantErr: "parse error"},
		{desc: "unknown function", change: func(r *monitoringv1.Rule) { r.Expr.StrVal = "rates(up[5m])" }, wantErr: "unknown function"},
		{desc: "counter range without range", change: func(r *monitoringv1.Rule) { r.Expr.StrVal = "rate(up)" }, wantErr: "expected type range vector"},
		{desc: "template not closed", change: func(r *monitoringv1.Rule) { r.Annotations["summary"] = "{{ $labels.instance }" }, wantErr: "annotation"},
		{desc: "template function unknown", change: func(r *monitoringv1.Rule) { r.Annotations["summary"] = "{{ $value | humanise }}" }, wantErr: "humanise"},
		{desc: "no expression", change: func(r *monitoringv1.Rule) { r.Expr.StrVal = "" }, wantErr: "field 'expr' must be set"},
	}
	for _, tt := range tests {
		r := ok
		r.Annotations = map[string]string{"summary": ok.Annotations["summary"]}
		r.Expr.Type, r.Expr.StrVal = 1, "up == 0"
		tt.change(&r)
		errs := loadRules([]monitoringv1.RuleGroup{{Name: "g", Rules: []monitoringv1.Rule{r}}})
		got := fmt.Sprint(errs)
		switch {
		case tt.wantErr == "" && len(errs) > 0:
			t.Errorf("%s: %v; want no error", tt.desc, errs)
		case tt.wantErr != "" && !strings.Contains(got, tt.wantErr):
			t.Errorf("%s: errors %s; want one containing %q", tt.desc, got, tt.wantErr)
		}
	}
}

// The alerts promised are there: stale entries present, repairs
// happening (a rate), watch down (up == 0 and absent); each has a
// severity, a summary and a description, and counters are only read
// through rate or increase.
func TestAlertRules(t *testing.T) {
	rules := alertRules(t)
	uses := func(a alertRule, metric string, match func(*parser.VectorSelector) bool) bool {
		return slices.ContainsFunc(a.selectors, func(vs *parser.VectorSelector) bool { return vs.Name == metric && match(vs) })
	}
	has := func(vs *parser.VectorSelector, label, value string) bool {
		return slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == label && m.Matches(value) })
	}
	anySelector := func(*parser.VectorSelector) bool { return true }
	promised := []struct {
		desc string
		ok   func(a alertRule) bool
	}{
		{"stale entries present", func(a alertRule) bool {
			return uses(a, "arpcheck_watch_peers", func(vs *parser.VectorSelector) bool { return has(vs, "verdict", "stale") })
		}},
		{"repairs happening", func(a alertRule) bool {
			return uses(a, "arpcheck_watch_repair_actions_total", func(vs *parser.VectorSelector) bool {
				return a.inRate[vs] && has(vs, "action", "replaced")
			})
		}},
		{"watch down (up == 0)", func(a alertRule) bool {
			b, ok := a.expr.(*parser.BinaryExpr)
			return ok && b.Op == parser.EQLC && uses(a, "up", anySelector)
		}},
		{"watch absent", func(a alertRule) bool {
			c, ok := a.expr.(*parser.Call)
			return ok && c.Func.Name == "absent" && uses(a, "up", anySelector)
		}},
	}
	for _, p := range promised {
		if !slices.ContainsFunc(rules, p.ok) {
			t.Errorf("no alert for %s", p.desc)
		}
	}
	names := map[string]bool{}
	for _, a := range rules {
		if names[a.name] {
			t.Errorf("alert %s defined twice", a.name)
		}
		names[a.name] = true
		if sev := a.rule.Labels["severity"]; !slices.Contains([]string{"info", "warning", "critical"}, sev) {
			t.Errorf("alert %s: severity %q; want info, warning or critical", a.name, sev)
		}
		for _, k := range []string{"summary", "description"} {
			if strings.TrimSpace(a.rule.Annotations[k]) == "" {
				t.Errorf("alert %s has no %s", a.name, k)
			}
		}
		for _, vs := range a.selectors {
			if strings.HasSuffix(vs.Name, "_total") && !a.inRate[vs] {
				t.Errorf("alert %s reads the counter %s outside rate, irate or increase: its value means nothing", a.name, vs.Name)
			}
		}
	}
}

// stubStats is a Watcher that has done nothing yet.
type stubStats struct{}

func (stubStats) Stats() watch.Stats { return watch.Stats{} }

// watchFamilies returns the metric families package watchmetrics exports
// for a Watcher, as arpcheck watch --listen serves them. Every labelled
// metric has a series for each of its label values, zeros included.
func watchFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(watchmetrics.New(stubStats{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		fams[mf.GetName()] = mf
	}
	return fams
}

// Every metric the alerts select is one arpcheck watch exports (package
// watchmetrics), and every label value they match is one it uses.
func TestAlertMetricsExported(t *testing.T) {
	checkAlertSelectors(t, "package watchmetrics", alertRules(t), watchFamilies(t))
}

// targetLabels are the labels Prometheus gives every series of a target.
var targetLabels = []string{"job", "instance"}

// checkAlertSelectors fails the test for each problem selectorProblems
// finds.
func checkAlertSelectors(t *testing.T, source string, rules []alertRule, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for _, p := range selectorProblems(source, rules, fams) {
		t.Error(p)
	}
}

// selectorProblems checks the alerts' selectors against the metric
// families an exporter serves: each arpcheck metric must be one of them
// (up is Prometheus's own), each label it matches on one of its labels,
// and each value matched one of the label's values, where the exporter
// gives a series for every value (as watchmetrics does).
func selectorProblems(source string, rules []alertRule, fams map[string]*dto.MetricFamily) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	n := 0
	for _, a := range rules {
		for _, vs := range a.selectors {
			if vs.Name == "up" {
				continue
			}
			n++
			if !strings.HasPrefix(vs.Name, "arpcheck_") {
				report("%s selects %s, which arpcheck does not export", a, vs.Name)
				continue
			}
			fam := fams[vs.Name]
			if fam == nil {
				report("%s selects %s, which %s does not export", a, vs.Name, source)
				continue
			}
			values := map[string][]string{}
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					values[l.GetName()] = append(values[l.GetName()], l.GetValue())
				}
			}
			for k, v := range values {
				slices.Sort(v)
				values[k] = slices.Compact(v)
			}
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName || slices.Contains(targetLabels, m.Name) {
					continue
				}
				vals, ok := values[m.Name]
				if !ok {
					report("%s: %s has no label %s (%s)", a, vs.Name, m.Name, source)
					continue
				}
				for _, want := range literalAlternatives(m) {
					if !slices.Contains(vals, want) {
						report("%s: %s{%s}: %s has no value %q; it has %q (%s)", a, vs.Name, m, m.Name, want, vals, source)
					}
				}
				if (m.Type == labels.MatchEqual || m.Type == labels.MatchRegexp) && !slices.ContainsFunc(vals, m.Matches) {
					report("%s: %s{%s} matches none of %q (%s)", a, vs.Name, m, vals, source)
				}
			}
		}
	}
	if n == 0 {
		report("the queries select no arpcheck metric")
	}
	return problems
}

var literal = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// literalAlternatives returns the values a matcher names outright: the
// value of =, or the plain words of a regex a|b|c.
func literalAlternatives(m *labels.Matcher) []string {
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		return []string{m.Value}
	}
	var out []string
	for _, alt := range strings.Split(m.Value, "|") {
		if literal.MatchString(alt) {
			out = append(out, alt)
		}
	}
	return out
}

func TestLiteralAlternatives(t *testing.T) {
	tests := []struct {
		desc string
		m    *labels.Matcher
		want []string
	}{
		{"equal", labels.MustNewMatcher(labels.MatchEqual, "a", "x"), []string{"x"}},
		{"alternatives", labels.MustNewMatcher(labels.MatchRegexp, "a", "x|y-z|w_1"), []string{"x", "y-z", "w_1"}},
		{"patterns skipped", labels.MustNewMatcher(labels.MatchRegexp, "a", "x.*|y"), []string{"y"}},
	}
	for _, tt := range tests {
		if got := literalAlternatives(tt.m); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q; want %q", tt.desc, got, tt.want)
		}
	}
}

// The check above finds a misspelt metric, label or value.
func TestCheckAlertSelectorsFinds(t *testing.T) {
	fams := watchFamilies(t)
	p := parser.NewParser(parser.Options{})
	tests := []struct{ expr, want string }{
		{`arpcheck_watch_peerz > 0`, "does not export"},
		{`arpcheck_watch_peers{verdit="stale"} > 0`, "has no label verdit"},
		{`arpcheck_watch_peers{verdict="stal"} > 0`, `has no value "stal"`},
		{`rate(arpcheck_watch_repair_actions_total{action=~"replaced|heal"}[5m]) > 0`, `has no value "heal"`},
		{`node_arp_entries > 0`, "arpcheck does not export"},
	}
	for _, tt := range tests {
		expr, err := p.ParseExpr(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		a := alertRule{name: "T", expr: expr}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				a.selectors = append(a.selectors, vs)
			}
			return nil
		})
		got := strings.Join(selectorProblems("test", []alertRule{a}, fams), "\n")
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: reported %q; want %q", tt.expr, got, tt.want)
		}
	}
}
