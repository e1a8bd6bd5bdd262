package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// TestSmoke builds a small lab, runs arpcheck on it once and checks that
// the table says its verdicts were right. The full benchmark is not run
// in tests: it takes minutes (see README, Performance).
func TestSmoke(t *testing.T) {
	netns.Require(t)
	if testing.Short() {
		t.Skip("builds arpcheck and a lab")
	}
	start := time.Now()
	var out strings.Builder
	o := options{n: 20, dead: 10, stale: 10, runs: 1, slowRuns: 1, tools: "arpcheck"}
	if err := run(t.Context(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	t.Logf("in %v:\n%s", time.Since(start).Round(time.Millisecond), table)
	row := ""
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| arpcheck verify (defaults) | 20 | 10 | 10 |") {
			row = line
		}
	}
	if row == "" {
		t.Fatalf("no row for arpcheck on 20 peers in:\n%s", table)
	}
	// 2 dead and 2 stale peers: one broadcast each on the second attempt,
	// a unicast each on both attempts, one for every healthy peer.
	for _, want := range []string{"| 4 / 24 |", "| yes: all verdicts right |"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
}
