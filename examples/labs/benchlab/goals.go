package main

import (
	"fmt"
	"io"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/examples/labs/benchlab/lab"
)

// goalSuite is every lab the performance goals name (issue 4), with the
// tools each goal compares.
var goalSuite = []scenario{
	// Goals 1 and 2, and the other tools for the table.
	{cfg: lab.Config{N: 1000, Dead: 10, Stale: 5},
		tools: []string{"arpcheck", "arpcheck-fast", "arp-scan", "arp-scan-fast", "arping-64", "arping-seq"}},
	// Goal 3: a healthy table costs no broadcast.
	{cfg: lab.Config{N: 4000}, tools: []string{"arpcheck", "arp-scan-fast"}},
	// Goal 4.
	{cfg: lab.Config{N: 4000, Dead: 10}, tools: []string{"arpcheck", "arp-scan", "arp-scan-fast"}},
	// Goal 5: 50,000 peers from a file, every one cached (see README).
	{cfg: lab.Config{N: 50000}, tools: []string{"arpcheck"}},
	// Goal 7: the run every minute.
	{cfg: lab.Config{N: 1}, tools: []string{"arpcheck"}},
}

// defaultWait is how long arpcheck's defaults wait for a silent peer
// before calling it dead: every attempt's timeout.
const defaultWait = arpprobe.DefaultAttempts * arpprobe.DefaultTimeout

// judgeGoals prints each goal the results can judge, met or not, with the
// figures.
func judgeGoals(w io.Writer, results []*result) {
	find := func(name string, n int, dead, stale float64) *result {
		for _, r := range results {
			if r.tool.name == name && r.cfg.N == n && r.cfg.Dead == dead && r.cfg.Stale == stale && len(r.samples) > 0 {
				return r
			}
		}
		return nil
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
	line := func(n int, met bool, format string, args ...any) {
		mark := "met"
		if !met {
			mark = "**not met**"
		}
		fmt.Fprintf(w, "%d. %s: %s\n", n, mark, fmt.Sprintf(format, args...))
	}
	missing := func(n int, what string) { fmt.Fprintf(w, "%d. not measured: %s\n", n, what) }
	rightAll := func(rs ...*result) bool {
		for _, r := range rs {
			if ok, _ := r.right(); !ok {
				return false
			}
		}
		return true
	}

	fmt.Fprintln(w, "Goals (medians of this run):")
	if a, s := find("arpcheck-fast", 1000, 10, 5), find("arp-scan-fast", 1000, 10, 5); a != nil && s != nil {
		line(1, a.median() <= s.median() && rightAll(a),
			"1,000 peers, one attempt of 100 ms, --broadcast always, arp-scan's frame budget: arpcheck %s, arp-scan --bandwidth=10M --retry=1 --timeout=100 %s",
			sec(a.median()), sec(s.median()))
	} else {
		missing(1, "needs arpcheck-fast and arp-scan-fast on N=1000, 10% dead, 5% stale")
	}
	if a, s := find("arpcheck", 1000, 10, 5), find("arp-scan", 1000, 10, 5); a != nil && s != nil {
		ratio := a.median().Seconds() / s.median().Seconds()
		patient := arpprobe.DefaultAttempts >= 2 && defaultWait >= time.Second
		line(2, ratio <= 0.4 && patient && rightAll(a),
			"defaults: arpcheck %s, arp-scan %s: %.2f× (goal ≤ 0.4×); a silent peer gets %d attempts of %v, %v in all",
			sec(a.median()), sec(s.median()), ratio, arpprobe.DefaultAttempts, arpprobe.DefaultTimeout, defaultWait)
	} else {
		missing(2, "needs arpcheck and arp-scan on N=1000, 10% dead, 5% stale")
	}
	if a := find("arpcheck", 4000, 0, 0); a != nil {
		line(3, a.median() <= 200*time.Millisecond && a.maxBroadcast() == 0 && rightAll(a),
			"4,000 peers, healthy table: %s (goal ≤ 0.200 s), %d broadcast requests in the worst run (goal 0)",
			sec(a.median()), a.maxBroadcast())
	} else {
		missing(3, "needs arpcheck on N=4000, healthy")
	}
	if a := find("arpcheck", 4000, 10, 0); a != nil {
		limit := defaultWait + 300*time.Millisecond
		line(4, a.median() <= limit && a.peakRSS() <= 15<<20 && rightAll(a),
			"4,000 peers, 10%% dead, defaults: %s (goal ≤ %s), peak RSS %s (goal ≤ 15 MB)",
			sec(a.median()), sec(limit), mb(a.peakRSS()))
	} else {
		missing(4, "needs arpcheck on N=4000, 10% dead")
	}
	if a := find("arpcheck", 50000, 0, 0); a != nil {
		line(5, a.median() <= 2*time.Second && a.peakRSS() <= 60<<20 && rightAll(a),
			"50,000 peers from a file, all cached and alive (no timeout to wait): %s (goal ≤ 2 s), peak RSS %s (goal ≤ 60 MB)",
			sec(a.median()), mb(a.peakRSS()))
	} else {
		missing(5, "needs arpcheck on N=50000, healthy")
	}
	fmt.Fprintln(w, "6. see `go test -run '^$' -bench 'Exchange|ProbeVeth' -benchmem ./arpprobe/` (not part of this program)")
	if a := find("arpcheck", 1, 0, 0); a != nil {
		// Process time: CPU time, user and system, what a run every
		// minute costs the host; the wall time includes the reply's wait.
		line(7, a.medianCPU() <= 20*time.Millisecond && rightAll(a),
			"one healthy peer: %s of process time (user+system; goal ≤ 20 ms), %s wall with the reply's wait",
			sec(a.medianCPU()), sec(a.median()))
	} else {
		missing(7, "needs arpcheck on N=1, healthy")
	}
}
