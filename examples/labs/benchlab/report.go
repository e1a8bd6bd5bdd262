package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// report prints the table, the machine it ran on and, for -suite, the
// goals.
func report(w io.Writer, results []*result, o options, started time.Time) error {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "Measured %s on %s: %d CPUs, %s, %s, %s.\n\n", started.UTC().Format("2006-01-02 15:04 MST"),
		host, runtime.NumCPU(), memTotal(), kernelRelease(), runtime.Version())
	fmt.Fprintln(w, "| tool | N | dead % | stale % | median s | min–max s | CPU s | peak RSS MB | requests bcast / ucast | right |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range results {
		if len(r.samples) == 0 {
			continue
		}
		w0 := r.walls()
		f := r.medianFrames()
		ok, note := r.right()
		mark := "yes"
		if !ok {
			mark = "**no**"
		}
		runs := ""
		if len(r.samples) != o.runs {
			runs = fmt.Sprintf(" (%d run)", len(r.samples))
			if len(r.samples) > 1 {
				runs = fmt.Sprintf(" (%d runs)", len(r.samples))
			}
		}
		fmt.Fprintf(w, "| %s%s | %d | %g | %g | %.3f | %.3f–%.3f | %.3f | %.1f | %d / %d | %s: %s |\n",
			r.tool.label, runs, r.cfg.N, r.cfg.Dead, r.cfg.Stale,
			r.median().Seconds(), w0[0].Seconds(), w0[len(w0)-1].Seconds(),
			r.medianCPU().Seconds(), float64(r.peakRSS())/(1<<20),
			f.Broadcast, f.Unicast, mark, note)
	}
	fmt.Fprintf(w, "\nMedian of %d run(s); CPU is user+system time; peak RSS is the largest of one process "+
		"(for xargs, of one arping); requests are the ARP requests the peers' side received, medians.", o.runs)
	if o.rewrite {
		fmt.Fprint(w, " Broadcast requests were turned into unicasts to the owner in the peers' namespace "+
			"(nft; macvlan's broadcast queue is not a LAN).")
	}
	fmt.Fprintln(w)
	if o.suite {
		fmt.Fprintln(w)
		judgeGoals(w, results)
	}
	return nil
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "memory unknown"
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}
