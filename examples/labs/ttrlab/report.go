package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe/watch"
)

// result is a row's samples.
type result struct {
	row     row
	samples []sample
}

// stats are a row's figures: each a time from t0, or never.
type stats struct {
	entryMedian, entryMin, entryMax time.Duration
	connectMedian, connectMax       time.Duration
}

func (r *result) stats() stats {
	var es, cs []time.Duration
	for _, s := range r.samples {
		es = append(es, s.entry)
		cs = append(cs, s.connect)
	}
	st := stats{entryMedian: median(es), connectMedian: median(cs), entryMin: never, entryMax: never, connectMax: never}
	if len(es) > 0 {
		slices.SortFunc(es, compareTimes)
		st.entryMin, st.entryMax = es[0], es[len(es)-1]
		slices.SortFunc(cs, compareTimes)
		st.connectMax = cs[len(cs)-1]
	}
	return st
}

// compareTimes orders times, never after every other.
func compareTimes(a, b time.Duration) int {
	return int(max(-1, min(1, key(a)-key(b))))
}

func key(d time.Duration) float64 {
	if d < 0 {
		return math.Inf(1)
	}
	return float64(d)
}

// median returns the median of ds, never counting as longer than any
// time: the mean of the middle two for an even count (never if either
// is never), and never when there is nothing.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return never
	}
	s := slices.Clone(ds)
	slices.SortFunc(s, compareTimes)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	a, b := s[n/2-1], s[n/2]
	if a < 0 || b < 0 {
		return never
	}
	return (a + b) / 2
}

// goal says whether the row meets its goal: for watch, median times to a
// correct entry and to a working connect of at most goalTime; for watch
// in a scenario without a goal, every run within its bound (see
// config.bound) and the second a check takes. Other rows have none ("—").
func (c *config) goal(r *result) (met bool, text string) {
	if r.row.m != methodWatch {
		return true, "—"
	}
	st := r.stats()
	if !r.row.sc.goal {
		b, by := c.bound(r.row.sc)
		if st.entryMax >= 0 && st.entryMax <= b+time.Second {
			return true, "no goal; bound by " + by + ": every run within it"
		}
		return false, "no goal; **bound by " + by + ": exceeded**"
	}
	if r.row.sc.speaks {
		for _, s := range r.samples {
			if s.connect < 0 || s.connect > speaksGoal {
				return false, "**not met**"
			}
		}
		if len(r.samples) == 0 {
			return false, "**not met**"
		}
		return true, "met"
	}
	ok := func(d time.Duration) bool { return d >= 0 && d <= goalTime }
	if ok(st.entryMedian) && ok(st.connectMedian) {
		return true, "met"
	}
	return false, "**not met**"
}

// fixers counts what fixed the entry in each run: "watch (wire:
// replaced) 5/5".
func (r *result) fixers() string {
	var names []string
	count := map[string]int{}
	for _, s := range r.samples {
		if count[s.fixer] == 0 {
			names = append(names, s.fixer)
		}
		count[s.fixer]++
	}
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d/%d", n, count[n], len(r.samples)))
	}
	return strings.Join(parts, ", ")
}

// fmtDur prints a time from t0 in seconds: three decimals below 10 s.
func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "never"
	case d < 10*time.Second:
		return fmt.Sprintf("%.3f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// secs prints a setting in seconds, as short as it goes: "90 s".
func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

func (c *config) fmtTime(d time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("never (>%s)", secs(c.limit))
	}
	return fmtDur(d)
}

// methodLabel is the table's name of r's method.
func (c *config) methodLabel(r row) string {
	flags := ""
	if r.sc.permanent {
		flags = " --include-permanent"
	}
	switch r.m {
	case methodCron:
		return fmt.Sprintf("cron: `repair%s` every %s", flags, secs(c.cronPeriod))
	case methodWatch:
		return fmt.Sprintf("`watch --repair%s`", flags)
	}
	return "kernel alone"
}

// report prints the machine, the command, the table and the goals.
func (c *config) report(w io.Writer, results []*result, started time.Time, command, version string) {
	fmt.Fprintf(w, "Measured %s on %s, nproc %d, %s, %s.\n\n", started.UTC().Format("2006-01-02 15:04 MST"),
		kernelRelease(), runtime.NumCPU(), runtime.Version(), version)
	fmt.Fprintf(w, "Command: `%s`\n\n", command)
	fmt.Fprintln(w, "| scenario | method | runs | correct entry: median | min | max | TCP connect: median | max | fixed by | goal |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---|---|")
	for _, r := range results {
		st := r.stats()
		_, g := c.goal(r)
		if r.row.m == methodWatch && r.row.sc.goal {
			if r.row.sc.speaks {
				g = "≤ " + secs(speaksGoal) + " every run: " + g
			} else {
				g = "≤ " + secs(goalTime) + " median: " + g
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.row.sc.title, c.methodLabel(r.row),
			len(r.samples), c.fmtTime(st.entryMedian), c.fmtTime(st.entryMin), c.fmtTime(st.entryMax),
			c.fmtTime(st.connectMedian), c.fmtTime(st.connectMax), r.fixers(), g)
	}
	fmt.Fprintf(w, "\nTimes are from t0, when the old owner is gone and the new one has the address (the client's "+
		"next packet fails; a gratuitous ARP, if any, goes right after), to the first moment the prober's entry holds the new MAC (a kernel event) and to the "+
		"first TCP connect from the prober that reaches the new owner (a connect every %s, each with a %s "+
		"timeout); in the rows where the new owner speaks first, to its own connect to the prober succeeding (one "+
		"connect from t0, retried by its kernel: SYNs at 0, 1, 3, 7 s ...). The lab's own netlink calls for the move come before t0 and do not count (they wait for "+
		"the host-wide rtnl lock, which other namespaces' teardown can hold for seconds). Runs stop after %s. "+
		"The cron runs `arpcheck repair` every %s from a random moment after t0; watch runs with its defaults "+
		"(--interval %s, --timeout %s, the neigh tracepoints and the eBPF IPv4 filter, as root), and sweep-bound rows come at a random moment of its "+
		"interval. In the row where the entry went STALE while its owner lived, the address moves 1.5 s plus "+
		"up to %s after.\n",
		dialEvery, dialTimeout, secs(c.limit), secs(c.cronPeriod), c.watchInterval(), watch.DefaultTimeout, secs(c.agedSpread))
	var goals []string
	for _, r := range results {
		if r.row.m != methodWatch {
			continue
		}
		met, _ := c.goal(r)
		st := r.stats()
		verdict, within := "met", "within the bound"
		if !met {
			verdict, within = "NOT met", "BOUND EXCEEDED"
		}
		runs := fmt.Sprintf("%d runs", len(r.samples))
		if len(r.samples) == 1 {
			runs = "1 run"
		}
		if r.row.sc.speaks {
			goals = append(goals, fmt.Sprintf("- %s: goal ≤ %s to the new owner's connect in every run %s "+
				"(max %s, median %s; the entry right at median %s; over %s).",
				r.row.sc.title, secs(speaksGoal), verdict, c.fmtTime(st.connectMax), c.fmtTime(st.connectMedian),
				c.fmtTime(st.entryMedian), runs))
		} else if r.row.sc.goal {
			goals = append(goals, fmt.Sprintf("- %s: goal ≤ 1 s %s (median %s to a correct entry, %s to a working connect, over %s).",
				r.row.sc.title, verdict, c.fmtTime(st.entryMedian), c.fmtTime(st.connectMedian), runs))
		} else if r.row.sc.permanent {
			goals = append(goals, fmt.Sprintf("- %s: no announcement and no state change, so only watch's sweep finds it: "+
				"bounded by --interval (%s here); median %s, max %s (%s).",
				r.row.sc.title, c.watchInterval(), c.fmtTime(st.entryMedian), c.fmtTime(st.entryMax), within))
		} else {
			goals = append(goals, fmt.Sprintf("- %s: no announcement, and the kernel raises no event until the "+
				"entry's reachable time (15–45 s) runs out and it enters DELAY; watch repairs it then (or at its sweep): "+
				"median %s, max %s (%s).",
				r.row.sc.title, c.fmtTime(st.entryMedian), c.fmtTime(st.entryMax), within))
		}
	}
	if len(goals) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(goals, "\n"))
	}
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}
