package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// env is what the program talks to: its standard streams, and the
// command line run is running (set by run).
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	args           []string
}

const description = `arpcheck checks the kernel's ARP cache against the wire: it asks each cached
peer's MAC by unicast whether it still owns the address (and, by --broadcast,
who owns it now), and reports a verdict per peer. repair then corrects wrong
entries with the owner's MAC verified in the same run.

Verdicts: ok, stale (another MAC owns the address now), dead (nobody answered),
conflict (two or more MACs answered), uncached (no usable entry, one MAC
answered), offlink (not on a connected subnet; not probed), unknown (could not
be checked; the reason says why).

Exit status of verify (repair judges after its repairs):

    0  every peer ok, uncached or offlink
    1  some peer dead (and none worse)
    2  some peer stale or in conflict
    3  could not check: usage, bad input, missing privilege, unknown
       interface, lock held, unknown peers, interrupted

doctor audits the host's neighbour settings (net.ipv4.neigh and net.ipv4.conf
sysctls per interface, PERMANENT and extern_learn entries, gc_thresh against
the table's size, whether arpcheck watch or a periodic arpcheck is set up):
each finding says what it means when an address is recycled and what to
change. It reads only and needs no capability. Exit 0 when nothing needs
attention, 1 when something does, 3 when it could not read.

Every flag also reads an environment variable: ARPCHECK_ and the flag's name
in capitals with - as _, such as ARPCHECK_INTERFACE, ARPCHECK_TIMEOUT or
ARPCHECK_INCLUDE_PERMANENT.

Probing needs CAP_NET_RAW, repair also CAP_NET_ADMIN. To run without root:

    setcap cap_net_raw,cap_net_admin+ep $(command -v arpcheck)

Shell completion for bash:

    source <(arpcheck completion bash)

The manual page, from the same definitions as this help:

    arpcheck man > arpcheck.8    (or: go generate ./cmd/arpcheck)`

// newApp returns the command line, wired to e. Errors come back from Run
// as they are; run turns them into exit statuses.
func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:                 "arpcheck",
		Usage:                "find and repair wrong entries in the kernel's ARP cache",
		UsageText:            "arpcheck verify [flags] [PEER ...]\narpcheck repair [flags] [PEER ...]\narpcheck probe [flags] IP\narpcheck doctor [--format text|json]\narpcheck version",
		Description:          description,
		Version:              versionString(),
		HideVersion:          true,
		EnableBashCompletion: true,
		Reader:               e.stdin,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		ExitErrHandler:       func(*cli.Context, error) {}, // run decides the exit status
		OnUsageError:         onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError(c, "unknown command %q", c.Args().First())
			}
			cli.ShowAppHelp(c)
			return &exitError{status: exitUnknown}
		},
		Commands: []*cli.Command{
			{
				Name:      "verify",
				Usage:     "probe peers and report their cache entries; writes nothing",
				ArgsUsage: "[PEER ...]",
				Description: "PEER is an IPv4 address or prefix (at most 65,536 addresses). Without PEERs\n" +
					"and --peers, every IPv4 entry of the neighbour table is checked. A malformed\n" +
					"peer stops the command before anything is sent (exit 3).",
				Flags:        checkFlags(),
				Action:       e.checkAction,
				OnUsageError: e.onCheckUsageError,
			},
			{
				Name:      "repair",
				Usage:     "verify, then correct wrong entries",
				ArgsUsage: "[PEER ...]",
				Description: "Stale entries get the owner's MAC verified in this run (ip neigh replace),\n" +
					"re-read just before writing; conflicts and peers without an entry are never\n" +
					"touched. With --delete-dead the entries of dead peers are deleted.",
				Flags:        append(checkFlags(), repairFlags()...),
				Action:       e.checkAction,
				OnUsageError: e.onCheckUsageError,
			},
			{
				Name:      "probe",
				Usage:     "ask for one address, arping-style: every reply with its MAC and RTT",
				ArgsUsage: "IP",
				Description: "Sends --count requests (broadcast, or unicast to --mac) --interval apart\n" +
					"and prints every reply; a second MAC answering is flagged. Exit 0 when an\n" +
					"answer came (from --mac if given), 1 when none, 3 on error. Interrupting\n" +
					"it ends it normally, with its statistics.",
				Flags:        probeFlags(),
				Action:       e.probeAction,
				OnUsageError: onUsageError,
			},
			e.watchCommand(),
			e.doctorCommand(),
			e.versionCommand(),
			{
				Name:   "man",
				Usage:  "print the manual page (roff), generated from these commands",
				Hidden: true,
				Action: func(c *cli.Context) error { return writeMan(c.App, e.stdout) },
			},
			{
				Name:      "completion",
				Usage:     "print a shell completion script: source <(arpcheck completion bash)",
				ArgsUsage: "bash",
				Hidden:    true,
				Action: func(c *cli.Context) error {
					if c.Args().Len() != 1 || c.Args().First() != "bash" {
						return usageError(c, "only bash completion is provided")
					}
					_, err := io.WriteString(e.stdout, bashCompletion)
					return err
				},
			},
		},
	}
	return app
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	name := "arpcheck"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return fail(&usageErr{fmt.Sprintf("%v (see %s --help)", err, name)})
}

// onCheckUsageError is onUsageError for verify and repair: a format
// asked for on the command line or in the environment still reports
// the failure. --format and --output are read from the command line
// here, as urfave/cli keeps no flag after a parse error.
func (e *env) onCheckUsageError(c *cli.Context, err error, sub bool) error {
	format, output := formatText, ""
	for _, f := range []struct {
		name string
		dst  *string
	}{{flagFormat, &format}, {flagOutput, &output}} {
		if v, ok := os.LookupEnv(envVars(f.name)[0]); ok {
			*f.dst = v
		}
		if v, ok := flagValue(c.Command, e.args, f.name); ok {
			*f.dst = v
		}
	}
	return e.reportFailure(c.Command.Name, format, output, time.Now(), onUsageError(c, err, sub))
}

// flagValue returns the value last given to the flag name of cmd on the
// command line args (program, command, flags and arguments), and
// whether it was given.
func flagValue(cmd *cli.Command, args []string, name string) (value string, ok bool) {
	if cmd == nil || len(args) < 2 {
		return "", false
	}
	var names []string
	takesValue := make(map[string]bool)
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
			if f.Names()[0] == name {
				names = append(names, n)
			}
		}
	}
	tail := args[2:]
	for i := 0; i < len(tail); i++ {
		a := tail[i]
		if a == "--" {
			break // the arguments follow
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && takesValue[n] && i+1 < len(tail) {
			i++
			v = tail[i]
		}
		if slices.Contains(names, n) {
			value, ok = v, true
		}
	}
	return value, ok
}

// run runs the command line args and returns the exit status; errors
// go to e.stderr.
func run(ctx context.Context, args []string, e *env) int {
	app := newApp(e)
	e.args = flagsFirst(app, args)
	err := app.RunContext(ctx, e.args)
	if err == nil {
		return exitOK
	}
	status := exitUnknown
	var ee *exitError
	if errors.As(err, &ee) {
		status = ee.status
		err = ee.err
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "arpcheck: "+errorText(err))
	}
	return status
}

// errorText is an error as the user reads it: without the library's
// "arpprobe: " prefixes, which say nothing to someone running arpcheck.
func errorText(err error) string {
	return strings.ReplaceAll(err.Error(), "arpprobe: ", "")
}

// flagsFirst moves the flags of a command given after its arguments in
// front of them ("arpcheck probe 198.18.0.2 -c 5"): the flag parser
// urfave/cli uses stops at the first argument. Flags it does not know
// are moved too, so that they are reported as unknown flags rather than
// as bad peers; "--" ends the flags, as usual, and is put between the
// flags and the arguments.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 3 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.HasName(args[1]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	takesValue := make(map[string]bool)
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, positional []string
	tail := args[2:]
	for i := 0; i < len(tail); i++ {
		a := tail[i]
		switch {
		case a == "--":
			positional = append(positional, tail[i+1:]...)
			i = len(tail)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(tail) {
				i++
				flags = append(flags, tail[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	if len(positional) == 0 {
		return out
	}
	return append(append(out, "--"), positional...)
}
