// Command benchlab measures arpcheck against arp-scan and arping on a lab
// of N peers built in throw-away network namespaces, and prints a
// markdown table: median and min–max wall time over several runs, CPU
// time, peak RSS, the ARP requests each tool sent (broadcast / unicast),
// and whether its answers were right.
//
//	sudo go run ./examples/labs/benchlab -n 1000 -dead 10 -stale 5 -runs 5
//	sudo go run ./examples/labs/benchlab -suite     # every lab of the performance goals
//	sudo go run ./examples/labs/benchlab -watch-idle 60s -n 4000 -runs 3   # watch's idle cost, with and without tracepoints
//
// The lab (package lab): a prober namespace with lan0 198.18.0.1/16, a veth to
// a peers namespace where each live peer is a macvlan with its own MAC
// and address; dead peers have no macvlan. The prober's cache holds an
// entry for each peer (STALE, NTF_EXT_LEARNED: these do not count
// towards the host-wide ARP table limits): the owner's MAC, a wrong MAC
// (stale) or one nobody has (dead). It is seeded again before every run.
// An nft rule in the peers' namespace turns each broadcast request into a
// unicast to the owner's MAC (-rewrite, on by default; see package lab for
// why); counters on the peers' side count the requests before that rule.
//
// It needs root and, for the other tools, arp-scan, iputils-arping and
// nftables (apt-get install arp-scan iputils-arping nftables). It builds
// arpcheck from ./cmd/arpcheck as released (CGO_ENABLED=0 go build
// -trimpath -ldflags='-s -w', package release) unless -arpcheck names a
// binary: the peak RSS it reports counts the binary's own pages, and the
// released binary maps no libc. It never touches the host's interfaces
// or sysctls; the namespaces are unnamed and go when the program ends,
// also on Ctrl-C.
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
	"syscall"
	"time"

	"github.com/arpcheck/arpcheck/examples/labs/benchlab/lab"
	"github.com/arpcheck/arpcheck/examples/labs/internal/release"
	"github.com/arpcheck/arpcheck/internal/netns"
)

func main() {
	var o options
	flag.IntVar(&o.n, "n", 1000, "number of peers (at most 65000)")
	flag.Float64Var(&o.dead, "dead", 10, "percent of peers that are dead: cached, nobody behind them")
	flag.Float64Var(&o.stale, "stale", 5, "percent of peers that are stale: cached with a wrong MAC")
	flag.IntVar(&o.runs, "runs", 5, "measured runs of each tool")
	flag.IntVar(&o.slowRuns, "slow-runs", 1, "measured runs of the slow tools (arping-seq)")
	flag.StringVar(&o.tools, "tools", "arpcheck,arpcheck-fast,arp-scan,arp-scan-fast,arping-64",
		"tools to run, comma-separated: "+toolNames())
	flag.BoolVar(&o.rewrite, "rewrite", true, "turn broadcast requests into unicasts to the owner in the peers' namespace (needs nft)")
	flag.StringVar(&o.arpcheck, "arpcheck", "", "arpcheck binary to measure (default: built from ./cmd/arpcheck as released)")
	flag.BoolVar(&o.suite, "suite", false, "run every lab of the performance goals and judge the goals (ignores -n, -dead, -stale, -tools)")
	flag.BoolVar(&o.quiet, "q", false, "no progress on standard error")
	flag.DurationVar(&o.watchIdle, "watch-idle", 0, "measure `arpcheck watch --repair` on -n healthy entries over this window, "+
		"with and without --tracepoints, -runs times each (instead of the tools)")
	flag.BoolVar(&o.hold, "hold", false, "build and seed the lab (-n, -dead, -stale), print how to enter its namespaces, and wait for Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchlab [flags]\n\n"+
			"Builds a lab of peers in network namespaces, runs arpcheck, arp-scan and arping\n"+
			"against it and prints a markdown table. Needs root.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchlab:", err)
		os.Exit(1)
	}
}

type options struct {
	n           int
	dead, stale float64
	runs        int
	slowRuns    int
	tools       string
	rewrite     bool
	arpcheck    string
	suite       bool
	quiet       bool
	hold        bool
	watchIdle   time.Duration
}

func toolNames() string {
	var names []string
	for _, t := range tools {
		names = append(names, t.name)
	}
	return strings.Join(names, ", ")
}

// scenario is one lab and the tools run on it.
type scenario struct {
	cfg   lab.Config
	tools []string
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds network namespaces and runs raw-socket tools in them")
	}
	if o.runs < 1 || o.slowRuns < 1 {
		return errors.New("-runs and -slow-runs must be at least 1")
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	}
	if o.hold {
		return hold(ctx, lab.Config{N: o.n, Dead: o.dead, Stale: o.stale, Rewrite: o.rewrite, Log: logf}, stdout)
	}
	if o.watchIdle < 0 {
		return errors.New("-watch-idle must not be negative")
	}
	var scenarios []scenario
	if o.suite {
		scenarios = goalSuite
	} else {
		scenarios = []scenario{{
			cfg:   lab.Config{N: o.n, Dead: o.dead, Stale: o.stale},
			tools: strings.Split(o.tools, ","),
		}}
	}
	// Check every tool before building anything.
	var missing []string
	for i := range scenarios {
		var keep []string
		for _, name := range scenarios[i].tools {
			t, ok := toolByName(strings.TrimSpace(name))
			if !ok {
				return fmt.Errorf("unknown tool %q; known: %s", name, toolNames())
			}
			if err := t.available(); err != nil {
				missing = append(missing, t.name+": "+err.Error())
				continue
			}
			keep = append(keep, t.name)
		}
		scenarios[i].tools = keep
		scenarios[i].cfg.Rewrite = o.rewrite
		scenarios[i].cfg.Log = logf
	}
	for _, m := range missing {
		logf("skipping %s", m)
	}

	dir, err := os.MkdirTemp("", "benchlab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{
		arpcheck:  o.arpcheck,
		rusage:    filepath.Join(dir, "rusage"),
		peersFile: filepath.Join(dir, "peers.txt"),
	}
	logf("building the rusage helper")
	if err := goBuild(ctx, e.rusage, "./examples/labs/benchlab/internal/rusage"); err != nil {
		return err
	}
	if e.arpcheck == "" {
		e.arpcheck = filepath.Join(dir, "arpcheck")
		logf("building arpcheck")
		if err := release.Build(ctx, e.arpcheck, stderr); err != nil {
			return err
		}
	}

	if o.watchIdle > 0 {
		return runIdle(ctx, o, e, stdout, logf)
	}
	started := time.Now()
	var results []*result
	for _, sc := range scenarios {
		rs, err := runScenario(ctx, sc, o, e, logf)
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	return report(stdout, results, o, started)
}

// runScenario builds the lab of sc, runs each tool on it o.runs times,
// interleaved (one run of each tool, then the next round), and removes
// the lab.
func runScenario(ctx context.Context, sc scenario, o options, e *env, logf func(string, ...any)) (rs []*result, err error) {
	l, err := lab.Build(ctx, sc.cfg)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if err := writePeers(e.peersFile, l.Peers); err != nil {
		return nil, err
	}
	for _, name := range sc.tools {
		t, _ := toolByName(name)
		rs = append(rs, &result{tool: t, cfg: sc.cfg})
	}
	for round := 0; round < o.runs; round++ {
		for _, r := range rs {
			if r.tool.slow && round >= o.slowRuns {
				continue
			}
			s, err := runOnce(ctx, l, e, r.tool)
			if err != nil {
				return nil, err
			}
			logf("  N=%d %s: %.3f s, %d bcast / %d ucast, %s", sc.cfg.N, r.tool.name,
				s.wall.Seconds(), s.frames.Broadcast, s.frames.Unicast, s.verdict.note)
			r.samples = append(r.samples, s)
		}
	}
	return rs, nil
}

// writePeers writes the lab's addresses, one a line, for every tool's
// --peers, --file or xargs.
func writePeers(path string, peers []lab.Peer) error {
	var b strings.Builder
	for _, p := range peers {
		b.WriteString(p.IP.String())
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// goBuild builds the package pkg (a path such as
// ./examples/labs/benchlab/internal/rusage, from the root of the module
// this program belongs to) into out.
func goBuild(ctx context.Context, out, pkg string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w", pkg, root, err)
	}
	return nil
}

// hold builds and seeds a lab and keeps it until ctx is done, for
// looking around with ip, nft and the tools by hand.
func hold(ctx context.Context, cfg lab.Config, w io.Writer) (err error) {
	l, err := lab.Build(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if err := l.Seed(); err != nil {
		return err
	}
	// A process in each namespace gives it a name nsenter understands.
	var pids []int
	for _, ns := range []*netns.NS{l.Prober, l.PeersNS} {
		cmd := exec.Command("sleep", "infinity")
		if err := lab.StartIn(ns, cmd); err != nil {
			return err
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		pids = append(pids, cmd.Process.Pid)
	}
	fmt.Fprintf(w, "The lab is up; Ctrl-C removes it.\n"+
		"  prober: nsenter -t %d -n\n  peers:  nsenter -t %d -n\n", pids[0], pids[1])
	<-ctx.Done()
	return nil
}
