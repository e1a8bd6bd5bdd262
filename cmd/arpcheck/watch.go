package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/watch"
	"github.com/arpcheck/arpcheck/arpprobe/watchmetrics"
)

// The flags of watch only; it shares the others with verify and repair.
const (
	flagWatchRepair    = "repair"
	flagWatchPoll      = "poll"
	flagWatchTrace     = "tracepoints"
	flagWatchListen    = "listen"
	flagWatchLogFormat = "log-format"
	flagWatchLogLevel  = "log-level"
)

// watchCommand is `arpcheck watch`.
func (e *env) watchCommand() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "keep watching the cache: check entries as they change and, with --repair, correct them",
		ArgsUsage: "[PEER ...]",
		Description: "A daemon. It checks an entry as soon as it starts being used while STALE (DELAY)\n" +
			"or the kernel probes it (PROBE), changes MAC or appears, and as soon as another\n" +
			"host's ARP request or announcement shows the address with another MAC than the\n" +
			"cached one (which catches PERMANENT entries); it also sweeps every watched\n" +
			"entry each --interval, except idle STALE entries already found right (a check\n" +
			"would make the kernel trust them, unseen, for another 15-45 s).\n" +
			"Each check is a verify (with --repair, a repair with the same safeguards) of\n" +
			"the addresses concerned, at most one per address per second. Without PEERs and\n" +
			"--peers, every IPv4 entry of the neighbour table is watched.\n\n" +
			"Findings and repairs are logged to standard error (nothing when all is well).\n" +
			"With --listen, Prometheus metrics are served on /metrics and a health check\n" +
			"on /healthz. SIGHUP reads the peers again; SIGINT and SIGTERM stop it (exit 0).\n\n" +
			"It runs Go's garbage collector with GOGC=50 unless the environment sets GOGC: a\n" +
			"smaller peak heap in the first sweep, which checks every entry at once.",
		Flags:        watchFlags(),
		Action:       e.watchAction,
		OnUsageError: onUsageError,
	}
}

// watchFlags are the flags of watch: verify's peer and probing flags,
// repair's, and its own.
func watchFlags() []cli.Flag {
	shared := map[string]bool{flagInterface: true, flagPeers: true, flagTimeout: true, flagAttempts: true,
		flagBroadcast: true, flagRate: true, flagBroadcastRate: true}
	var flags []cli.Flag
	for _, f := range checkFlags() {
		if shared[f.Names()[0]] {
			flags = append(flags, f)
		}
		if d, ok := f.(*cli.DurationFlag); ok && d.Name == flagTimeout {
			d.Value = watch.DefaultTimeout
		}
	}
	flags = append(flags,
		&cli.BoolFlag{Name: flagWatchRepair, EnvVars: envVars(flagWatchRepair),
			Usage: "correct wrong entries as arpcheck repair does (without it, only report them)"})
	flags = append(flags, repairFlags()...)
	return append(flags,
		&cli.DurationFlag{Name: flagInterval, EnvVars: envVars(flagInterval), Value: watch.DefaultInterval,
			Usage: "sweep every watched entry every `DURATION`; 0: only once, at the start"},
		&cli.BoolFlag{Name: flagWatchTrace, EnvVars: envVars(flagWatchTrace), Value: true,
			Usage: "see entries start being used while STALE (the kernel announces no event for that) through " +
				"the kernel's neigh tracepoints, at once and without reading the table, when the process may " +
				"(CAP_BPF and CAP_PERFMON); otherwise, or with --tracepoints=false, read the table every --poll"},
		&cli.DurationFlag{Name: flagWatchPoll, EnvVars: envVars(flagWatchPoll), Value: watch.DefaultPoll,
			Usage: "without tracepoints, read the table every `DURATION`, to see entries start being used while STALE; 0: never"},
		&cli.StringFlag{Name: flagWatchListen, EnvVars: envVars(flagWatchListen),
			Usage: "serve /metrics (Prometheus) and /healthz on `ADDRESS`, such as :9808 (default: off)"},
		&cli.StringFlag{Name: flagWatchLogFormat, EnvVars: envVars(flagWatchLogFormat), Value: "text",
			Usage: "log `FORMAT`: text or json"},
		&cli.StringFlag{Name: flagWatchLogLevel, EnvVars: envVars(flagWatchLogLevel), Value: "info",
			Usage: "log from `LEVEL` up: debug (every check), info (repairs), warn (findings only) or error"},
	)
}

// watchConfig is what watch was asked to do.
type watchConfig struct {
	watch     watch.Config
	peerArgs  []string
	peers     string // --peers
	listen    string
	trace     bool // --tracepoints
	logFormat string
	logLevel  slog.Level
}

// readWatchFlags reads and checks watch's flags; errors are usage errors.
func readWatchFlags(c *cli.Context) (*watchConfig, error) {
	cfg := &watchConfig{
		peerArgs:  c.Args().Slice(),
		peers:     c.String(flagPeers),
		listen:    c.String(flagWatchListen),
		trace:     c.Bool(flagWatchTrace),
		logFormat: c.String(flagWatchLogFormat),
	}
	var errs []string
	policy, err := arpprobe.ParseBroadcastPolicy(c.String(flagBroadcast))
	if err != nil {
		errs = append(errs, fmt.Sprintf("--broadcast %q: want auto, always or never", c.String(flagBroadcast)))
	}
	w := &cfg.watch
	w.Check = arpprobe.Options{
		Interface: c.String(flagInterface),
		Probe: arpprobe.ProbeOptions{
			Timeout:       c.Duration(flagTimeout),
			Attempts:      c.Int(flagAttempts),
			Broadcast:     policy,
			Rate:          c.Int(flagRate),
			BroadcastRate: c.Int(flagBroadcastRate),
		},
	}
	if c.Bool(flagWatchRepair) {
		w.Check.Repair = &arpprobe.RepairPolicy{
			DryRun:             c.Bool(flagDryRun),
			DeleteDead:         c.Bool(flagDeleteDead),
			IncludePermanent:   c.Bool(flagIncludePermanent),
			IncludeExternLearn: c.Bool(flagIncludeExtern),
		}
	} else {
		for _, name := range []string{flagDryRun, flagDeleteDead, flagIncludePermanent, flagIncludeExtern} {
			if c.Bool(name) {
				errs = append(errs, "--"+name+" needs --"+flagWatchRepair)
			}
		}
	}
	errs = append(errs, probeOptionErrors(w.Check.Probe)...)
	// 0 turns sweeps (after the first) and reads off; the library's
	// zero means its default.
	for _, d := range []struct {
		name string
		v    time.Duration
		dst  *time.Duration
	}{{flagInterval, c.Duration(flagInterval), &w.Interval}, {flagWatchPoll, c.Duration(flagWatchPoll), &w.Poll}} {
		switch {
		case d.v < 0:
			errs = append(errs, "--"+d.name+" must not be negative")
		case d.v == 0:
			*d.dst = -1
		default:
			*d.dst = d.v
		}
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		errs = append(errs, fmt.Sprintf("--%s %q: want text or json", flagWatchLogFormat, cfg.logFormat))
	}
	if err := cfg.logLevel.UnmarshalText([]byte(c.String(flagWatchLogLevel))); err != nil {
		errs = append(errs, fmt.Sprintf("--%s %q: want debug, info, warn or error", flagWatchLogLevel, c.String(flagWatchLogLevel)))
	}
	if len(errs) > 0 {
		return nil, usageError(c, "%s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

// watchPeers reads the peers of watch: nil for the whole table, an
// empty list for none.
func watchPeers(cfg *watchConfig, stdin io.Reader) ([]netip.Addr, error) {
	peers, given, err := readPeers(cfg.peerArgs, cfg.peers, stdin)
	if err != nil {
		return nil, err
	}
	if given && peers == nil {
		peers = []netip.Addr{}
	}
	return peers, nil
}

// watchGCPercent is the GOGC watch runs with when the environment sets
// none. The peak of a watch's heap is its first sweep, a check of every
// entry at once, and the runtime's default (100) lets the heap grow to
// twice what is live before collecting. Measured on 4,000 entries with
// benchlab -watch-idle: about 3 MB less peak RSS, about 35 ms more CPU
// for the first sweep, and the same CPU at idle, where a watch
// allocates little.
const watchGCPercent = 50

// setWatchGC applies watchGCPercent unless gogc, the value of the GOGC
// environment variable, is set: then the runtime has applied it already,
// and the operator's choice stands.
func setWatchGC(gogc string) {
	if gogc == "" {
		debug.SetGCPercent(watchGCPercent)
	}
}

// watchAction runs watch until SIGINT or SIGTERM.
func (e *env) watchAction(c *cli.Context) error {
	cfg, err := readWatchFlags(c)
	if err != nil {
		return err
	}
	setWatchGC(os.Getenv("GOGC"))
	peers, err := watchPeers(cfg, e.stdin)
	if err != nil {
		return fail(err)
	}
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	var h slog.Handler = slog.NewTextHandler(e.stderr, opts)
	if cfg.logFormat == "json" {
		h = slog.NewJSONHandler(e.stderr, opts)
	}
	log := slog.New(h)

	k, err := arpprobe.OpenKernel()
	if err != nil {
		return fail(err)
	}
	defer k.Close()
	mon, err := watch.OpenNeighborMonitor()
	if err != nil {
		return fail(err)
	}
	defer mon.Close()
	wc := cfg.watch
	wc.Table, wc.Topology, wc.Events, wc.Peers, wc.Logger = k, k, mon, peers, log
	if cfg.trace {
		tr, err := watch.OpenNeighborTracer()
		if err != nil {
			return fail(err)
		}
		defer tr.Close()
		wc.Trace = tr
	}
	w, err := watch.New(wc)
	if err != nil {
		return fail(err)
	}

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if cfg.listen != "" {
		stop, err := serveMetrics(ctx, cfg.listen, w, log)
		if err != nil {
			return fail(err)
		}
		defer stop()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				e.reloadPeers(cfg, w, log)
			}
		}
	}()

	what := "every entry"
	if peers != nil {
		what = fmt.Sprintf("%d peers", len(peers))
	}
	log.Info("watching", "peers", what, "repair", wc.Check.Repair != nil, "interval", c.Duration(flagInterval),
		"listen", cfg.listen)
	err = w.Run(ctx)
	if err != nil {
		return fail(privilegeError(err))
	}
	log.Info("stopped")
	return nil
}

// reloadPeers reads the peer list again, on SIGHUP. A list that does not
// parse leaves the current one in place.
func (e *env) reloadPeers(cfg *watchConfig, w *watch.Watcher, log *slog.Logger) {
	if cfg.peers == "-" {
		log.Warn("SIGHUP: peers came from standard input; nothing to read again")
		return
	}
	peers, err := watchPeers(cfg, nil)
	if err != nil {
		log.Error("SIGHUP: peers not reloaded; keeping the current list", "err", err)
		return
	}
	w.SetPeers(peers)
	what := "every entry"
	if peers != nil {
		what = fmt.Sprintf("%d peers", len(peers))
	}
	log.Info("SIGHUP: peers reloaded", "peers", what)
}

// serveMetrics serves /metrics and /healthz on addr until stop is called.
// It fails at once if addr cannot be listened on.
func serveMetrics(ctx context.Context, addr string, w *watch.Watcher, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flagWatchListen, err)
	}
	reg := watchRegistry(w)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Health(); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
	}, nil
}

// watchRegistry returns the metrics watch serves: the Watcher's
// (package watchmetrics), arpcheck_build_info as the textfile has it,
// and the Go runtime's and the process's.
func watchRegistry(src watchmetrics.Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(watchmetrics.New(src), buildInfoMetric("watch"), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
