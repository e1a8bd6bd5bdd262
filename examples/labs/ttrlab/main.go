// Command ttrlab measures how long a moved address stays broken: a peer's
// address moves to a new MAC while the prober's ARP cache holds the old
// one, and ttrlab times how long it takes until the prober's entry holds
// the new MAC and a TCP connect to the address works again, with the
// kernel alone, with a cron-style `arpcheck repair` every 60 s, and with
// `arpcheck watch --repair`. It prints a markdown table.
//
//	sudo go run ./examples/labs/ttrlab                  # every row: several minutes
//	sudo go run ./examples/labs/ttrlab -methods watch   # the watch rows: about 5 minutes, most of it the sweep-bound row
//	sudo go run ./examples/labs/ttrlab -methods watch -scenarios announced,announced-permanent,silent   # seconds
//
// Each run builds a LAN of its own in throw-away network namespaces
// (198.18.0.0/24; see lab.go): the prober, the old owner of 198.18.0.2
// and its new owner, behind a bridge. At t0 the old owner's cable is
// pulled and the new owner takes the address. The scenarios:
//
//   - announced: the new owner sends a gratuitous ARP, as Linux does when
//     a link comes up (arp_notify); traffic has been flowing to the old
//     owner, so the prober's entry is REACHABLE;
//   - announced-permanent: the same, with the entry pinned PERMANENT;
//   - silent: no announcement; the entry is STALE and idle (the old
//     owner went 1.5 s before t0, while nothing used it), and the client
//     starts connecting at t0: a STALE entry in use;
//   - silent-aged: the same, but the entry went STALE while the old
//     owner was still there (as an idle entry does a reachable time
//     after its last use), and the address moves 1.5 to 31.5 s later;
//   - silent-permanent: no announcement, traffic flowing, a PERMANENT
//     entry. Nothing on the wire or in the kernel tells of the move, so
//     watch finds it only at its next sweep: --interval is the bound.
//     The run comes at a random moment of the sweep interval;
//   - silent-reachable, not one of the goal cases: no announcement,
//     traffic flowing, an ordinary entry, which traffic keeps REACHABLE;
//     the kernel reports nothing until the entry's reachable time runs
//     out (15–45 s), so watch cannot act sooner (except at a sweep);
//   - speaks-stale, speaks-reachable, speaks-permanent: the new owner
//     speaks first. It sends no ARP the prober can see (a static entry
//     for the prober, no announcement) and, from t0, connects to a TCP
//     server on the prober, whose entry is STALE and idle, REACHABLE
//     (traffic until t0) or PERMANENT; the prober answers its SYN to the
//     old MAC until the entry is right. The time is the new owner's
//     connect's; the goal, within 1.5 s (its first SYN retransmission)
//     in every run.
//
// Each scenario runs with the kernel alone; with `arpcheck repair` run
// for real every -cron-period (60 s) from a random moment in the first
// period after t0, as a cron entry whose minute falls anywhere; and
// with `arpcheck watch --repair` started before t0 (with
// --include-permanent for PERMANENT entries). Runs stop after -limit
// (90 s); the kernel alone never corrects a PERMANENT entry, which
// shows as "never (>90 s)".
//
// The rows whose figures are seconds (kernel, cron, watch bound by its
// sweep) run -jobs at a time; the others one at a time, alone.
//
// It needs root. It builds arpcheck from ./cmd/arpcheck with go build
// unless -arpcheck names a binary. It never touches the host's
// interfaces or sysctls; the namespaces are unnamed and go when the
// program ends, also on Ctrl-C, and the arpcheck processes it starts die
// with it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 5, "runs of each watch row")
	flag.IntVar(&o.slowRuns, "slow-runs", 3, "runs of each kernel and cron row (each takes up to -limit)")
	flag.StringVar(&o.scenarios, "scenarios", "all", "scenarios to run, comma-separated: announced, announced-permanent, silent, silent-aged, silent-permanent, silent-reachable, speaks-stale, speaks-reachable, speaks-permanent")
	flag.StringVar(&o.methods, "methods", "all", "methods to run, comma-separated: kernel, cron, watch")
	flag.DurationVar(&o.cfg.limit, "limit", 90*time.Second, "how long a run waits for the entry and a connect after t0")
	flag.DurationVar(&o.cfg.cronPeriod, "cron-period", time.Minute, "period of the cron's `arpcheck repair`")
	flag.DurationVar(&o.cfg.interval, "interval", 0, "watch's --interval (default: watch's own, 1m)")
	flag.DurationVar(&o.cfg.agedSpread, "aged-spread", 30*time.Second,
		"silent-aged: the address moves 1.5 s plus a random time up to this after the entry went STALE")
	flag.IntVar(&o.jobs, "jobs", 4, "kernel, cron and sweep-bound runs to run at once")
	flag.StringVar(&o.cfg.arpcheck, "arpcheck", "", "arpcheck binary to run (default: go build ./cmd/arpcheck)")
	flag.BoolVar(&o.verbose, "v", false, "print each run's watch log or cron output on standard error")
	flag.BoolVar(&o.quiet, "q", false, "no progress on standard error")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: ttrlab [flags]\n\n"+
			"Moves an address to a new MAC in throw-away network namespaces and times how long\n"+
			"the prober's ARP entry and a TCP connect stay broken: kernel alone, cron repair,\n"+
			"arpcheck watch. Prints a markdown table. Needs root.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.command = strings.Join(append([]string{"go run ./examples/labs/ttrlab"}, quoteArgs(os.Args[1:])...), " ")
	// Ctrl-C or SIGTERM cancels ctx: every run stops, its arpcheck
	// processes get SIGTERM and its namespaces are closed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ttrlab:", err)
		os.Exit(1)
	}
}

type options struct {
	cfg                config
	runs, slowRuns     int
	scenarios, methods string
	jobs               int
	verbose, quiet     bool
	command            string
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds network namespaces and runs arpcheck in them")
	}
	if o.runs < 1 || o.slowRuns < 1 || o.jobs < 1 {
		return errors.New("-runs, -slow-runs and -jobs must be at least 1")
	}
	if o.cfg.limit <= 0 || o.cfg.cronPeriod <= 0 || o.cfg.interval < 0 || o.cfg.agedSpread < 0 {
		return errors.New("-limit and -cron-period must be positive, -interval and -aged-spread not negative")
	}
	rows, err := selectRows(o.scenarios, o.methods)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		if !o.quiet {
			mu.Lock()
			fmt.Fprintf(stderr, format+"\n", args...)
			mu.Unlock()
		}
	}
	if o.cfg.arpcheck == "" {
		dir, err := os.MkdirTemp("", "ttrlab-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.cfg.arpcheck = filepath.Join(dir, "arpcheck")
		logf("building arpcheck")
		if err := goBuild(ctx, o.cfg.arpcheck, "./cmd/arpcheck", false); err != nil {
			return err
		}
	}
	version, err := exec.CommandContext(ctx, o.cfg.arpcheck, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", o.cfg.arpcheck, err)
	}

	started := time.Now()
	results := make([]*result, len(rows))
	var fast, slow []job
	for i, r := range rows {
		results[i] = &result{row: r}
		n := o.runs
		if r.m != methodWatch {
			n = o.slowRuns
		}
		for k := range n {
			j := job{res: results[i], n: k + 1, of: n}
			if r.slow() {
				slow = append(slow, j)
			} else {
				fast = append(fast, j)
			}
		}
	}
	do := func(j job) error {
		s, err := o.cfg.run(ctx, j.res.row)
		if err != nil {
			return fmt.Errorf("%s, run %d: %w", j.res.row, j.n, err)
		}
		mu.Lock()
		j.res.samples = append(j.res.samples, s)
		mu.Unlock()
		phase := ""
		if s.phase > 0 {
			phase = fmt.Sprintf(", phase %s", fmtDur(s.phase))
		}
		logf("%-28s run %d/%d: entry %s, connect %s, fixed by %s%s; entry at the end %s %s; move took %s", j.res.row, j.n, j.of,
			o.cfg.fmtTime(s.entry), o.cfg.fmtTime(s.connect), s.fixer, phase, s.finalMAC, s.finalState, s.move.Round(time.Microsecond))
		if o.verbose && s.detail != "" {
			logf("%s", s.detail)
		}
		return nil
	}
	// The timed rows first, one at a time, on a quiet machine.
	for _, j := range fast {
		if err := do(j); err != nil {
			return err
		}
	}
	if err := pool(ctx, o.jobs, slow, do); err != nil {
		return err
	}
	o.cfg.report(stdout, results, started, o.command, strings.TrimSpace(string(version)))
	return nil
}

// job is one run of a row.
type job struct {
	res   *result
	n, of int
}

// pool runs the jobs, n at a time, and returns the first error (after
// which it starts no more).
func pool(ctx context.Context, n int, jobs []job, do func(job) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := do(j); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// goBuild builds the package pkg (a path such as ./cmd/arpcheck, from the
// root of the module this program belongs to) into out, with the race
// detector if race is set.
func goBuild(ctx context.Context, out, pkg string, race bool) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, root, err, b)
	}
	return nil
}

// quoteArgs quotes the arguments that a shell would split.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}
