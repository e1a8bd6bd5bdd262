package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// setcapHint says how to grant the capabilities without root.
const setcapHint = "run as root, or grant them once: setcap cap_net_raw,cap_net_admin+ep $(command -v arpcheck)"

// privilegeError explains a missing privilege: what needed which
// capability (the library's CapabilityError names it), and how to grant
// it. Other errors are returned as they are.
func privilegeError(err error) error {
	var ce *arpprobe.CapabilityError
	switch {
	case errors.As(err, &ce):
		what := "probing"
		if ce.Capability == "CAP_NET_ADMIN" {
			what = "repair"
		}
		return fmt.Errorf("%w\n%s needs %s; %s", err, what, ce.Capability, setcapHint)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w\n%s", err, setcapHint)
	}
	return err
}

// checkAction runs verify or repair.
func (e *env) checkAction(c *cli.Context) error {
	started := time.Now()
	cfg, err := readCheckFlags(c, c.Command.Name == "repair")
	if err != nil {
		return e.reportFailure(c.Command.Name, c.String(flagFormat), c.String(flagOutput), started, err)
	}
	res, err := e.check(c.Context, cfg)
	if res == nil {
		return e.reportFailure(cfg.command, cfg.format, cfg.output, started, err)
	}
	res.err = err
	if cfg.verbose {
		fmt.Fprintln(e.stderr, "arpcheck: "+statsLine(&res.report.Stats))
	}
	// Written as it is rendered: a report of many peers is not held in
	// memory as text too.
	rerr := emit(e.stdout, cfg.output, func(w io.Writer) error { return renderReport(w, cfg.format, res, cfg.quiet) })
	if rerr != nil {
		err = errors.Join(err, rerr)
		res.status = exitUnknown
	}
	return &exitError{status: res.status, err: err}
}

// reportFailure ends a verify or repair (command) that could not check
// anything, started at started, with status 3: the error goes to
// standard error and, in format (if it is one), to standard output or to
// output, so that monitoring reading the report learns why.
func (e *env) reportFailure(command, format, output string, started time.Time, err error) error {
	if !validFormat(format) {
		return fail(err)
	}
	var ee *exitError
	cause := err
	if errors.As(err, &ee) && ee.err != nil {
		cause = ee.err
	}
	b, rerr := render(func(w io.Writer) error { return renderError(w, format, command, started, cause) })
	if rerr == nil && len(b) > 0 {
		if output == "-" {
			output = ""
		}
		if werr := emit(e.stdout, output, writeBytes(b)); werr != nil {
			cause = errors.Join(cause, werr)
		}
	}
	return fail(cause)
}

// check runs one verify or repair. It returns a nil result and an error
// when nothing could be checked; otherwise the result, and an error to
// print when the run was cut short or could not finish its repairs.
func (e *env) check(ctx context.Context, cfg *checkConfig) (*result, error) {
	if cfg.lock != "" {
		unlock, err := lock(cfg.lock)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	peers, given, err := readPeers(cfg.peerArgs, cfg.peers, e.stdin)
	if err != nil {
		return nil, err
	}
	runCtx := ctx
	if cfg.deadline > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.deadline)
		defer cancel()
	}
	res := &result{command: cfg.command, dryRun: cfg.opts.Repair != nil && cfg.opts.Repair.DryRun}
	if given && len(peers) == 0 {
		// An empty list checks nothing; nil would mean the whole table.
		res.report = &arpprobe.Report{Started: time.Now()}
		return res, nil
	}
	if !given {
		peers = nil // every entry of the neighbour table
	}
	rep, err := checkWithCapture(runCtx, peers, cfg.opts, cfg.pcap)
	if rep == nil {
		return nil, privilegeError(err)
	}
	res.report = rep
	res.status = exitStatus(rep.Peers)
	var notes []error
	if err != nil {
		res.status = exitUnknown
		notes = append(notes, privilegeError(err))
	}
	switch {
	case ctx.Err() != nil:
		res.status = exitUnknown
		notes = append(notes, fmt.Errorf("%w; %d of %d peers not checked", errInterrupted, rep.Summary.Unknown, rep.Summary.Checked))
	case rep.Summary.Unknown > 0:
		why := ""
		if runCtx.Err() != nil {
			why = fmt.Sprintf(" within the deadline of %s", cfg.deadline)
		}
		notes = append(notes, &uncheckedErr{unknown: rep.Summary.Unknown, checked: rep.Summary.Checked, why: why})
	}
	return res, errors.Join(notes...)
}

// statsLine describes the frames of a run, for --verbose.
func statsLine(st *arpprobe.Stats) string {
	var drops []string
	for r := arpprobe.DropReason(1); int(r) < len(st.Dropped); r++ {
		if st.Dropped[r] > 0 {
			drops = append(drops, fmt.Sprintf("%s %d", r, st.Dropped[r]))
		}
	}
	if st.KernelDrops > 0 {
		drops = append(drops, fmt.Sprintf("kernel %d", st.KernelDrops))
	}
	dropped := "none"
	if len(drops) > 0 {
		dropped = strings.Join(drops, ", ")
	}
	rejected := "not counted (the classic filter: no CAP_BPF)"
	if st.RejectsCounted {
		var rej []string
		for r := arpprobe.DropShort; int(r) < len(st.Rejected); r++ {
			if st.Rejected[r] > 0 {
				rej = append(rej, fmt.Sprintf("%s %d", r, st.Rejected[r]))
			}
		}
		rejected = "none"
		if len(rej) > 0 {
			rejected = strings.Join(rej, ", ")
		}
	}
	return fmt.Sprintf("frames: sent %d unicast, %d broadcast; received %d, %d replies to our requests; dropped: %s; rejected by the kernel's filter: %s",
		st.SentUnicast, st.SentBroadcast, st.Received, st.Replies, dropped, rejected)
}
