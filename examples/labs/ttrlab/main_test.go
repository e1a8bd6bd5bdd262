package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/arpcheck/arpcheck/internal/proctest"
)

// arpcheck is the command the lab runs, built for the tests.
var arpcheck proctest.Build

func TestMain(m *testing.M) {
	code := m.Run()
	arpcheck.Remove()
	os.Exit(code)
}

// arpcheckBinary returns the arpcheck binary, built on first use.
func arpcheckBinary(t *testing.T) string {
	t.Helper()
	return arpcheck.Path(t, "arpcheck", func(path string) error {
		return goBuild(context.Background(), path, "./cmd/arpcheck", raceEnabled)
	})
}

// The watch rows of issue 6's goal cases, once each, as `go run
// ./examples/labs/ttrlab -methods watch` runs them (silent-aged without its
// random wait before the move): after the move the
// prober's entry holds the new owner's MAC (PERMANENT stays PERMANENT), a
// TCP connect reaches the new owner, watch exits 0 on SIGTERM, and the
// namespaces are gone. The times are logged, not asserted: this is a
// test of what happens, and the program measures how fast.
func TestWatchRows(t *testing.T) {
	netns.Require(t)
	fds := netns.OpenFDs(t)
	c := &config{arpcheck: arpcheckBinary(t), limit: 30 * time.Second, cronPeriod: time.Minute}
	for _, sc := range scenarios {
		if !sc.goal {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			s, err := c.run(ctx, row{sc, methodWatch})
			t.Logf("entry %s, connect %s, fixed by %s; watch log:\n%s", fmtDur(s.entry), fmtDur(s.connect), s.fixer, s.detail)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			wantState := "REACHABLE|STALE|DELAY|PROBE"
			if sc.permanent {
				wantState = "PERMANENT"
			}
			if s.finalMAC != "02:00:00:00:00:02" || !strings.Contains("|"+wantState+"|", "|"+s.finalState+"|") {
				t.Errorf("entry at the end: %s %s; want the new owner's 02:00:00:00:00:02, %s", s.finalMAC, s.finalState, wantState)
			}
			if s.entry < 0 {
				t.Errorf("the entry never held the new owner's MAC within %s", c.limit)
			}
			if s.connect < 0 {
				t.Errorf("no TCP connect reached the new owner within %s", c.limit)
			}
			// The kernel never corrects a PERMANENT entry, and leaves a
			// STALE one in use alone for 5 s (DELAY): watch must have.
			if (sc.permanent || sc.idle) && !strings.HasPrefix(s.fixer, "watch") {
				t.Errorf("fixed by %q; want watch", s.fixer)
			}
		})
	}
	if got := netns.OpenFDs(t); got != fds {
		t.Errorf("after the runs: %d namespace fds open; want %d (a lab was not torn down)", got, fds)
	}
}

func TestMedian(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		desc string
		in   []time.Duration
		want time.Duration
	}{
		{"none", nil, never},
		{"odd", []time.Duration{3 * s, s, 2 * s}, 2 * s},
		{"even: the mean of the middle two", []time.Duration{4 * s, s, 2 * s, 3 * s}, 2500 * time.Millisecond},
		{"never counts as longest", []time.Duration{never, s, 2 * s}, 2 * s},
		{"never in the middle", []time.Duration{never, never, s}, never},
		{"even, one of the middle two never", []time.Duration{never, s}, never},
	} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("%s: median(%v) = %v; want %v", tt.desc, tt.in, got, tt.want)
		}
	}
}

func TestGoal(t *testing.T) {
	c := &config{limit: 90 * time.Second, cronPeriod: time.Minute}
	ms := func(ds ...int) []sample {
		var out []sample
		for _, d := range ds {
			e := never
			if d >= 0 {
				e = time.Duration(d) * time.Millisecond
			}
			out = append(out, sample{entry: e, connect: e})
		}
		return out
	}
	announced, silentPerm, reachable := scenarioNamed(t, "announced"), scenarioNamed(t, "silent-permanent"), scenarioNamed(t, "silent-reachable")
	speaks := scenarioNamed(t, "speaks-reachable")
	for _, tt := range []struct {
		desc    string
		row     row
		samples []sample
		met     bool
		text    string
	}{
		{"kernel rows have no goal", row{announced, methodKernel}, ms(-1, -1), true, "—"},
		{"median within 1 s", row{announced, methodWatch}, ms(300, 1500, 400), true, "met"},
		{"median over 1 s", row{announced, methodWatch}, ms(1100, 1500, 400), false, "**not met**"},
		{"a run that never ends is over", row{announced, methodWatch}, ms(-1, -1, 400), false, "**not met**"},
		{"PERMANENT silent within the interval", row{silentPerm, methodWatch}, ms(59000, 100), true,
			"no goal; bound by --interval (1m0s): every run within it"},
		{"PERMANENT silent past the interval", row{silentPerm, methodWatch}, ms(62000, 100), false,
			"no goal; **bound by --interval (1m0s): exceeded**"},
		{"REACHABLE within the reachable time", row{reachable, methodWatch}, ms(45500), true,
			"no goal; bound by the kernel's reachable time (15–45 s) or --interval (1m0s): every run within it"},
		{"speaks first: every run within 1.5 s", row{speaks, methodWatch}, ms(300, 1500, 1400), true, "met"},
		{"speaks first: one run over 1.5 s, the median under", row{speaks, methodWatch}, ms(300, 1501, 400), false, "**not met**"},
		{"speaks first: a run that never connects", row{speaks, methodWatch}, ms(300, -1, 400), false, "**not met**"},
	} {
		met, text := c.goal(&result{row: tt.row, samples: tt.samples})
		if met != tt.met || text != tt.text {
			t.Errorf("%s: goal = %v, %q; want %v, %q", tt.desc, met, text, tt.met, tt.text)
		}
	}
	if got, want := c.fmtTime(never), "never (>90 s)"; got != want {
		t.Errorf("fmtTime(never) = %q; want %q", got, want)
	}
}

func scenarioNamed(t *testing.T, name string) scenario {
	t.Helper()
	for _, sc := range scenarios {
		if sc.name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return scenario{}
}

func TestSelectRows(t *testing.T) {
	for _, tt := range []struct {
		scenarios, methods string
		want               []string // row names; nil: an error
	}{
		{"announced", "watch", []string{"announced/watch"}},
		{"silent,announced", "cron,kernel", []string{"announced/kernel", "announced/cron", "silent/kernel", "silent/cron"}},
		{"all", "watch", []string{"announced/watch", "announced-permanent/watch", "silent/watch",
			"silent-aged/watch", "silent-permanent/watch", "silent-reachable/watch",
			"speaks-stale/watch", "speaks-reachable/watch", "speaks-permanent/watch"}},
		{"nonesuch", "all", nil},
		{"all", "flush", nil},
	} {
		rows, err := selectRows(tt.scenarios, tt.methods)
		var got []string
		for _, r := range rows {
			got = append(got, r.String())
		}
		if (err != nil) != (tt.want == nil) || strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("selectRows(%q, %q) = %v, %v; want %v", tt.scenarios, tt.methods, got, err, tt.want)
		}
	}
}
