package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// perfParser reads plugin output on standard input as Nagios does (the
// performance data is what follows '|' on the first line) and parses it
// with Monitoring::Plugin::Performance, the Monitoring Plugins' own Perl
// parser. For each label it prints: label value uom warning critical min
// max status, where status is what the label's thresholds make of its
// value (0 OK, 1 WARNING, 2 CRITICAL); "-" for an undefined field.
const perfParser = `
use strict;
use warnings;
use Monitoring::Plugin::Performance use_die => 1;
my $first = <STDIN>;
chomp $first;
my (undef, $perf) = split /\|/, $first, 2;
defined $perf or die "no performance data\n";
my @perf = Monitoring::Plugin::Performance->parse_perfstring($perf)
	or die "Monitoring::Plugin::Performance cannot parse: $perf\n";
for my $p (@perf) {
	my $t = $p->threshold;
	my $d = sub { defined $_[0] && $_[0] ne "" ? $_[0] : "-" };
	print join(" ", $p->label, $p->value, $d->($p->uom),
		$d->($t->warning->is_set ? "" . $t->warning : undef), $d->($t->critical->is_set ? "" . $t->critical : undef),
		$d->($p->min), $d->($p->max), $t->get_status($p->value)), "\n";
}
`

// needPerfParser returns the perl that has Monitoring::Plugin. CI
// installs it (Debian: libmonitoring-plugin-perl); elsewhere a test
// without it is skipped.
func needPerfParser(t *testing.T) string {
	t.Helper()
	perl := needProgram(t, "perl")
	if out, err := exec.Command(perl, "-MMonitoring::Plugin::Performance", "-e", "1").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Monitoring::Plugin is not installed (CI installs libmonitoring-plugin-perl): %s", out)
		}
		t.Skipf("Monitoring::Plugin is not installed (apt-get install libmonitoring-plugin-perl): %s", out)
	}
	return perl
}

type perfLabel struct {
	value                     float64
	uom, warn, crit, min, max string
	status                    int
}

// The nagios format's performance data, as the Monitoring Plugins'
// parser reads it: every label with its value and unit, the minimum 0,
// and thresholds that say what the exit status says: the worst status
// the thresholds give is the run's (UNKNOWN, which no threshold gives,
// aside).
func TestNagiosPerfdataParses(t *testing.T) {
	perl := needPerfParser(t)
	deleted := sampleResult()
	deleted.report.Peers = deleted.report.Peers[:3]
	deleted.report.Peers[2].Action = arpprobe.ActionDeleted
	deleted.report.Summary = arpprobe.Summary{Checked: 3, OK: 1, Stale: 1, Dead: 1, Repaired: 1, Deleted: 1}
	deleted.status = exitStatus(deleted.report.Peers)
	dead := healthyResult()
	dead.report.Peers = append(dead.report.Peers, sampleResult().report.Peers[2])
	dead.report.Summary.Checked, dead.report.Summary.Dead = 4, 1
	dead.status = exitStatus(dead.report.Peers)
	tests := []struct {
		name       string
		res        *result
		thresholds int // the worst status the thresholds give
		values     map[string]float64
	}{
		{"every verdict, repaired", sampleResult(), exitCritical, map[string]float64{"checked": 7, "stale": 0, "dead": 1, "conflict": 1, "unknown": 1, "repaired": 1}},
		{"all well", healthyResult(), exitOK, map[string]float64{"checked": 3, "ok": 1, "stale": 0}},
		{"a dead peer", dead, exitWarning, map[string]float64{"dead": 1}},
		{"stale, dry run", dryRun(), exitCritical, map[string]float64{"stale": 1}},
		{"dead entry deleted", deleted, exitOK, map[string]float64{"dead": 0, "deleted": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeNagios(&out, tt.res); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(perl, "-e", perfParser)
			cmd.Stdin = bytes.NewReader(out.Bytes())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			parsed, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s\noutput:\n%s", err, stderr.String(), out.String())
			}
			labels := map[string]perfLabel{}
			worst := exitOK
			for _, line := range strings.Split(strings.TrimSpace(string(parsed)), "\n") {
				f := strings.Fields(line)
				if len(f) != 8 {
					t.Fatalf("parser line %q", line)
				}
				v, err1 := strconv.ParseFloat(f[1], 64)
				st, err2 := strconv.Atoi(f[7])
				if err1 != nil || err2 != nil {
					t.Fatalf("parser line %q", line)
				}
				labels[f[0]] = perfLabel{value: v, uom: f[2], warn: f[3], crit: f[4], min: f[5], max: f[6], status: st}
				worst = max(worst, st)
			}
			for _, l := range []string{"checked", "ok", "stale", "dead", "conflict", "uncached", "offlink", "unknown", "repaired", "deleted", "duration"} {
				p, ok := labels[l]
				if !ok {
					t.Errorf("label %s not parsed; parsed %v", l, labels)
					continue
				}
				if p.min != "0" {
					t.Errorf("%s: min %s; want 0", l, p.min)
				}
				if want, ok := tt.values[l]; ok && p.value != want {
					t.Errorf("%s = %v; want %v", l, p.value, want)
				}
			}
			if d := labels["duration"]; d.uom != "s" || d.value != 1.235 {
				t.Errorf("duration %v%s; want 1.235s", d.value, d.uom)
			}
			for l, want := range map[string][2]string{"stale": {"0", "0"}, "conflict": {"0", "0"}, "dead": {"0", "-"}, "unknown": {"-", "-"}} {
				if p := labels[l]; p.warn != want[0] || p.crit != want[1] {
					t.Errorf("%s: warning %s, critical %s; want %s, %s", l, p.warn, p.crit, want[0], want[1])
				}
			}
			if worst != tt.thresholds {
				t.Errorf("the thresholds say %s; want %s (exit status %d)\n%s", stateName(worst), stateName(tt.thresholds), tt.res.status, out.String())
			}
			if tt.res.status != exitUnknown && worst != tt.res.status {
				t.Errorf("the thresholds say %s, the exit status %s", stateName(worst), stateName(tt.res.status))
			}
		})
	}
}
