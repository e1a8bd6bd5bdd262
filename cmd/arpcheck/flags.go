package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// envPrefix starts the environment variable of every flag:
// ARPCHECK_<FLAG>, the flag's name in capitals with '-' as '_'.
const envPrefix = "ARPCHECK_"

// envVars returns the environment variable a flag reads.
func envVars(name string) []string {
	return []string{envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// The flags' names, used by the commands to read them.
const (
	flagInterface        = "interface"
	flagPeers            = "peers"
	flagTimeout          = "timeout"
	flagAttempts         = "attempts"
	flagBroadcast        = "broadcast"
	flagRate             = "rate"
	flagBroadcastRate    = "broadcast-rate"
	flagDeadline         = "deadline"
	flagFormat           = "format"
	flagOutput           = "output"
	flagQuiet            = "quiet"
	flagLock             = "lock"
	flagVerbose          = "verbose"
	flagDeleteDead       = "delete-dead"
	flagDryRun           = "dry-run"
	flagIncludePermanent = "include-permanent"
	flagIncludeExtern    = "include-extern-learn"
	flagCount            = "count"
	flagInterval         = "interval"
	flagMAC              = "mac"
	flagSource           = "source"
)

// The report formats of --format.
const (
	formatText       = "text"
	formatJSON       = "json"
	formatPrometheus = "prometheus"
	formatNagios     = "nagios"
)

var formats = []string{formatText, formatJSON, formatPrometheus, formatNagios}

func interfaceFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: flagInterface, Aliases: []string{"i"}, EnvVars: envVars(flagInterface),
		Usage: usage}
}

func deadlineFlag(usage string) cli.Flag {
	return &cli.DurationFlag{Name: flagDeadline, EnvVars: envVars(flagDeadline), Usage: usage}
}

func quietFlag(usage string) cli.Flag {
	return &cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, EnvVars: envVars(flagQuiet), Usage: usage}
}

// checkFlags are the flags of verify and repair.
func checkFlags() []cli.Flag {
	return []cli.Flag{
		interfaceFlag("check peers on interface `NAME` only (default: the kernel's route to each peer decides)"),
		&cli.StringFlag{Name: flagPeers, EnvVars: envVars(flagPeers), TakesFile: true,
			Usage: "read peers from `FILE`, one address or prefix per line (- for standard input)"},
		&cli.DurationFlag{Name: flagTimeout, EnvVars: envVars(flagTimeout), Value: arpprobe.DefaultTimeout,
			Usage: "wait `DURATION` for the replies to one attempt"},
		&cli.IntFlag{Name: flagAttempts, EnvVars: envVars(flagAttempts), Value: arpprobe.DefaultAttempts,
			Usage: "make `N` attempts per request before a peer is given up"},
		&cli.StringFlag{Name: flagBroadcast, EnvVars: envVars(flagBroadcast), Value: string(arpprobe.BroadcastAuto),
			Usage: "`POLICY` for broadcast requests: auto (peers whose cached MAC is silent or missing), " +
				"always (every peer: finds conflicts) or never (unicast only)"},
		&cli.IntFlag{Name: flagRate, EnvVars: envVars(flagRate), Value: arpprobe.DefaultRate,
			Usage: "send at most `N` frames per second, all together"},
		&cli.IntFlag{Name: flagBroadcastRate, EnvVars: envVars(flagBroadcastRate), Value: arpprobe.DefaultBroadcastRate,
			Usage: "send at most `N` broadcast frames per second (counted in --rate too)"},
		deadlineFlag("end the whole run after `DURATION`; peers not finished by then get verdict unknown (0: no bound)"),
		&cli.StringFlag{Name: flagFormat, EnvVars: envVars(flagFormat), Value: formatText,
			Usage: "report `FORMAT`: " + strings.Join(formats, ", ")},
		&cli.StringFlag{Name: flagOutput, EnvVars: envVars(flagOutput), TakesFile: true,
			Usage: "write the report to `FILE` atomically (temporary file and rename; for node_exporter's textfile directory)"},
		quietFlag("text format: print only problems, and nothing when all is well"),
		&cli.StringFlag{Name: flagLock, EnvVars: envVars(flagLock), TakesFile: true,
			Usage: "hold an exclusive lock on `FILE` during the run; if another run holds it, exit 3 at once"},
		&cli.BoolFlag{Name: flagVerbose, EnvVars: envVars(flagVerbose),
			Usage: "print frame counts (sent, received, dropped by reason) to standard error"},
		pcapFlag(),
	}
}

// repairFlags are the flags of repair only.
func repairFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagDeleteDead, EnvVars: envVars(flagDeleteDead),
			Usage: "delete the entries of dead peers, so the next packet makes the kernel ask by broadcast"},
		&cli.BoolFlag{Name: flagDryRun, EnvVars: envVars(flagDryRun),
			Usage: "report what would be done, change nothing"},
		&cli.BoolFlag{Name: flagIncludePermanent, EnvVars: envVars(flagIncludePermanent),
			Usage: "also correct PERMANENT entries (they stay PERMANENT)"},
		&cli.BoolFlag{Name: flagIncludeExtern, EnvVars: envVars(flagIncludeExtern),
			Usage: "also correct extern_learn entries, which a control plane (EVPN, a CNI plugin) owns (they keep the flag)"},
	}
}

// probeFlags are the flags of probe.
func probeFlags() []cli.Flag {
	return []cli.Flag{
		interfaceFlag("send on interface `NAME` (default: the kernel's route to IP decides); any IP may be asked on it"),
		&cli.StringFlag{Name: flagMAC, EnvVars: envVars(flagMAC),
			Usage: "send unicast requests to `MAC` (does it still own IP?); only its replies count as answers"},
		&cli.StringFlag{Name: flagSource, Aliases: []string{"s"}, EnvVars: envVars(flagSource),
			Usage: "sender `ADDRESS` of the requests (default: the route's; 0.0.0.0 sends RFC 5227 probes)"},
		&cli.IntFlag{Name: flagCount, Aliases: []string{"c"}, EnvVars: envVars(flagCount), Value: 3,
			Usage: "send `N` requests; 0: until interrupted"},
		&cli.DurationFlag{Name: flagInterval, EnvVars: envVars(flagInterval), Value: arpprobe.DefaultPingInterval,
			Usage: "wait `DURATION` between requests"},
		&cli.DurationFlag{Name: flagTimeout, EnvVars: envVars(flagTimeout), Value: arpprobe.DefaultTimeout,
			Usage: "wait `DURATION` for replies after the last request"},
		deadlineFlag("end the probe after `DURATION`, with its statistics (0: no bound)"),
		quietFlag("print nothing; the exit status says whether an answer came"),
		pcapFlag(),
	}
}

// usageError is a mistake on the command line: exit 3 with a hint.
func usageError(c *cli.Context, format string, args ...any) error {
	return fail(&usageErr{fmt.Sprintf("%s (see %s --help)", fmt.Sprintf(format, args...), c.Command.HelpName)})
}

// checkConfig is what verify and repair were asked to do.
type checkConfig struct {
	command  string
	opts     arpprobe.Options
	peerArgs []string
	peers    string // --peers
	deadline time.Duration
	format   string
	output   string
	quiet    bool
	lock     string
	verbose  bool
	pcap     string // --pcap
}

// readCheckFlags reads and validates the flags and arguments of verify
// and repair; errors are usage errors.
func readCheckFlags(c *cli.Context, repair bool) (*checkConfig, error) {
	cfg := &checkConfig{
		command:  c.Command.Name,
		peerArgs: c.Args().Slice(),
		peers:    c.String(flagPeers),
		deadline: c.Duration(flagDeadline),
		format:   c.String(flagFormat),
		output:   c.String(flagOutput),
		quiet:    c.Bool(flagQuiet),
		lock:     c.String(flagLock),
		verbose:  c.Bool(flagVerbose),
		pcap:     c.String(flagPcap),
	}
	policy, err := arpprobe.ParseBroadcastPolicy(c.String(flagBroadcast))
	if err != nil {
		return nil, usageError(c, "--broadcast %q: want auto, always or never", c.String(flagBroadcast))
	}
	cfg.opts = arpprobe.Options{
		Interface: c.String(flagInterface),
		Probe: arpprobe.ProbeOptions{
			Timeout:       c.Duration(flagTimeout),
			Attempts:      c.Int(flagAttempts),
			Broadcast:     policy,
			Rate:          c.Int(flagRate),
			BroadcastRate: c.Int(flagBroadcastRate),
		},
	}
	if repair {
		cfg.opts.Repair = &arpprobe.RepairPolicy{
			DryRun:             c.Bool(flagDryRun),
			DeleteDead:         c.Bool(flagDeleteDead),
			IncludePermanent:   c.Bool(flagIncludePermanent),
			IncludeExternLearn: c.Bool(flagIncludeExtern),
		}
	}
	var errs []string
	errs = append(errs, probeOptionErrors(cfg.opts.Probe)...)
	if cfg.deadline < 0 {
		errs = append(errs, "--"+flagDeadline+" must not be negative")
	}
	if !validFormat(cfg.format) {
		errs = append(errs, fmt.Sprintf("--format %q: want one of %s", cfg.format, strings.Join(formats, ", ")))
	}
	if cfg.output == "-" {
		cfg.output = "" // standard output
	}
	if len(errs) > 0 {
		return nil, usageError(c, "%s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

func validFormat(f string) bool {
	for _, g := range formats {
		if f == g {
			return true
		}
	}
	return false
}

// probeOptionErrors checks the probe flags shared by verify, repair and
// watch: each must be positive.
func probeOptionErrors(o arpprobe.ProbeOptions) []string {
	var errs []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{flagTimeout, o.Timeout > 0},
		{flagAttempts, o.Attempts > 0},
		{flagRate, o.Rate > 0},
		{flagBroadcastRate, o.BroadcastRate > 0},
	} {
		if !f.ok {
			errs = append(errs, "--"+f.name+" must be positive")
		}
	}
	return errs
}
