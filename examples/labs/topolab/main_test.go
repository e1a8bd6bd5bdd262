package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/examples/labs/internal/release"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// buildArpcheck builds arpcheck as the lab runs it, once per test.
func buildArpcheck(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "arpcheck")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := release.Build(ctx, bin, io.Discard); err != nil {
		t.Fatal(err)
	}
	return bin
}

// caseNamed returns the lab's case called name.
func caseNamed(t *testing.T, name string) topoCase {
	t.Helper()
	cs, err := selectCases([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

// TestLabRealCases builds cases that issue 11 found right for real, runs
// arpcheck on them once, and checks that every row of the lab says its
// verdicts were right and nothing was written unasked; and that no
// namespace is left open afterwards.
func TestLabRealCases(t *testing.T) {
	netns.Require(t)
	bin := buildArpcheck(t)
	for _, name := range []string{"macvlan", "secondary"} {
		t.Run(name, func(t *testing.T) {
			open := netns.OpenFDs(t)
			var log strings.Builder
			rows, err := runCase(t.Context(), caseNamed(t, name), options{runs: 1, arpcheck: bin}, &log)
			if err != nil {
				t.Fatalf("runCase: %v\n%s", err, log.String())
			}
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2 (verify, repair)", len(rows))
			}
			for _, r := range rows {
				if r.right != 1 || r.runs != 1 || len(r.wrote.order) > 0 {
					t.Errorf("%s: right in %d of %d, verdicts %s, wrote %q; want right in 1 of 1, nothing written\ntruth: %s\n%s",
						r.command, r.right, r.runs, r.got, r.wrote.order, r.truth, log.String())
				}
			}
			if n := netns.OpenFDs(t); n != open {
				t.Errorf("%d namespace descriptors open after the case, %d before", n, open)
			}
		})
	}
}

// TestLabCatchesWrongVerdicts runs arpcheck on a real case whose truth
// the test falsifies: a stale peer said to be ok, a dead entry said to
// be kept. The lab must count those runs wrong and say what arpcheck
// answered and wrote, or its right-in-k-of-N would mean nothing.
func TestLabCatchesWrongVerdicts(t *testing.T) {
	netns.Require(t)
	bin := buildArpcheck(t)
	tp, err := caseNamed(t, "macvlan").build(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.close(); err != nil {
			t.Error(err)
		}
	})
	if err := holdEntries(tp.prober); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cmd        command
		got, wrote string
	}{
		{name: "a stale peer called ok",
			cmd: command{args: []string{"verify", "198.18.12.3"}, wants: []want{w("mv0", "198.18.12.3", "ok")}},
			got: "mv0 198.18.12.3: stale"},
		{name: "a dead entry said to be kept",
			cmd:   command{args: []string{"repair", "--delete-dead", "198.18.12.4"}, wants: []want{w("mv0", "198.18.12.4", "dead")}},
			got:   "mv0 198.18.12.4: dead deleted",
			wrote: "deleted mv0 198.18.12.4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := runOnce(t.Context(), tp, tc.cmd, bin)
			if err != nil {
				t.Fatal(err)
			}
			if o.right {
				t.Errorf("right; want wrong (got %q, wrote %q)", o.got, o.wrote)
			}
			if !slices.Contains(o.got, tc.got) {
				t.Errorf("got %q, want %q among them", o.got, tc.got)
			}
			if tc.wrote != "" && !slices.Contains(o.wrote, tc.wrote) {
				t.Errorf("wrote %q, want %q among them", o.wrote, tc.wrote)
			}
		})
	}
}

// TestLabDriverCases builds the cases that need a driver this kind of
// kernel may lack (VRF, bond, VLAN, ipvlan, dummy) and runs arpcheck on
// each once: where the driver exists the case must build and every
// command must run. Where it does not, the lab's row says so; the test
// then, under CI=true, logs that it could not run (the project's one
// exception to "no skip in CI") and passes; elsewhere it skips.
func TestLabDriverCases(t *testing.T) {
	netns.Require(t)
	bin := buildArpcheck(t)
	for _, name := range []string{"vrf", "bond", "vlan", "ipvlan", "dummy"} {
		t.Run(name, func(t *testing.T) {
			var log strings.Builder
			rows, err := runCase(t.Context(), caseNamed(t, name), options{runs: 1, arpcheck: bin}, &log)
			if err != nil {
				t.Fatalf("runCase: %v\n%s", err, log.String())
			}
			if len(rows) == 1 && rows[0].command == "" && strings.HasPrefix(rows[0].failure, "could not be built: this kernel has no ") {
				if os.Getenv("CI") == "true" {
					t.Log("could not run: " + rows[0].failure)
					return
				}
				t.Skip("could not run: " + rows[0].failure)
			}
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2 (verify, repair): %+v", len(rows), rows)
			}
			for _, r := range rows {
				if r.runs != 1 || r.failure != "" {
					t.Errorf("%s: %d runs, failure %q; want 1 run", r.command, r.runs, r.failure)
				}
				t.Logf("%s: right in %d of %d: %s; wrote %q", r.command, r.right, r.runs, r.got, r.wrote.order)
			}
		})
	}
}
