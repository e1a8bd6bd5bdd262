package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// probeAction runs probe: arpprobe.Ping with every reply printed as it
// comes and statistics at the end. Exit 0 when an answer came, 1 when
// none, 3 when it could not ask.
func (e *env) probeAction(c *cli.Context) (err error) {
	cfg, quiet, err := readProbeFlags(c)
	if err != nil {
		return err
	}
	capture, err := openCapture(c.String(flagPcap))
	if err != nil {
		return fail(err)
	}
	defer func() { err = capture.finish(err) }()
	cfg.Listen = capture.listener(cfg.Listen)
	ctx := c.Context
	if d := c.Duration(flagDeadline); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := e.stdout
	if quiet {
		out = io.Discard
	}
	pr := &probePrinter{w: out, target: cfg.Target, mac: cfg.MAC}
	cfg.OnSend = pr.sent
	cfg.OnReply = pr.reply
	st, err := arpprobe.Ping(ctx, cfg)
	if err != nil {
		err = privilegeError(err)
		if st.Sent > 0 {
			pr.stats(&st)
		}
		return fail(err)
	}
	pr.stats(&st)
	if st.Answered == 0 {
		return &exitError{status: 1}
	}
	return nil
}

// readProbeFlags reads and checks probe's flags and its one argument.
func readProbeFlags(c *cli.Context) (cfg arpprobe.PingConfig, quiet bool, err error) {
	if c.Args().Len() != 1 {
		return cfg, false, usageError(c, "want one IP to probe, got %d arguments", c.Args().Len())
	}
	arg := c.Args().First()
	target, perr := netip.ParseAddr(arg)
	if perr != nil || !target.Is4() {
		return cfg, false, usageError(c, "%q: not an IPv4 address", arg)
	}
	cfg = arpprobe.PingConfig{
		Target:    target,
		Interface: c.String(flagInterface),
		Count:     c.Int(flagCount),
		Interval:  c.Duration(flagInterval),
		Timeout:   c.Duration(flagTimeout),
	}
	var errs []string
	if s := c.String(flagMAC); s != "" {
		mac, merr := net.ParseMAC(s)
		if merr != nil || len(mac) != 6 || mac[0]&1 != 0 || mac.String() == "00:00:00:00:00:00" {
			errs = append(errs, fmt.Sprintf("--mac %q: not a unicast Ethernet address", s))
		}
		cfg.MAC = mac
	}
	if s := c.String(flagSource); s != "" {
		src, serr := netip.ParseAddr(s)
		if serr != nil || !src.Is4() {
			errs = append(errs, fmt.Sprintf("--source %q: not an IPv4 address", s))
		}
		cfg.Source = src
	}
	if cfg.Count < 0 {
		errs = append(errs, "--count must not be negative")
	}
	if cfg.Interval <= 0 {
		errs = append(errs, "--interval must be positive")
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, "--timeout must be positive")
	}
	if c.Duration(flagDeadline) < 0 {
		errs = append(errs, "--deadline must not be negative")
	}
	if len(errs) > 0 {
		return cfg, false, usageError(c, "%s", strings.Join(errs, "; "))
	}
	return cfg, c.Bool(flagQuiet), nil
}

// probePrinter prints a probe as arping does.
type probePrinter struct {
	w      io.Writer
	target netip.Addr
	mac    net.HardwareAddr
}

func (p *probePrinter) sent(q arpprobe.PingRequest) {
	if q.Seq != 1 {
		return
	}
	to := "broadcast"
	if q.Dst != nil {
		to = "unicast to " + q.Dst.String()
	}
	fmt.Fprintf(p.w, "ARPING %s from %s %s (%s)\n", q.Target, q.Source, q.Interface, to)
}

func (p *probePrinter) reply(r arpprobe.PingReply) {
	kind := "Broadcast"
	if r.Unicast {
		kind = "Unicast"
	}
	line := fmt.Sprintf("%s reply from %s [%s]  %s  seq=%d", kind, r.IP, r.MAC, rttText(r.RTT), r.Seq)
	if r.Dup > 0 {
		line += fmt.Sprintf(" (DUP: %d)", r.Dup+1)
	}
	if r.NewOwner {
		line += fmt.Sprintf(" [another MAC claims %s]", r.IP)
	}
	if !r.Counted {
		line += fmt.Sprintf(" [not %s]", p.mac)
	}
	fmt.Fprintln(p.w, line)
}

func (p *probePrinter) stats(st *arpprobe.PingStats) {
	fmt.Fprintf(p.w, "--- %s statistics ---\n", st.Target)
	line := fmt.Sprintf("%d %s sent, %d answered (%.0f%% loss), %d %s",
		st.Sent, plural(st.Sent, "request", "requests"), st.Answered, 100*st.Loss(),
		st.Replies, plural(st.Replies, "reply", "replies"))
	if st.Duplicates > 0 {
		line += fmt.Sprintf(", %d %s", st.Duplicates, plural(st.Duplicates, "duplicate", "duplicates"))
	}
	fmt.Fprintln(p.w, line)
	if st.Answered > 0 {
		fmt.Fprintf(p.w, "rtt min/avg/max = %.3f/%.3f/%.3f ms\n", ms(st.RTTMin), ms(st.RTTAvg), ms(st.RTTMax))
	}
	if len(st.Owners) > 1 {
		owners := make([]string, len(st.Owners))
		for i, o := range st.Owners {
			owners[i] = fmt.Sprintf("%s (%d)", o.MAC, o.Replies)
		}
		fmt.Fprintf(p.w, "%d MACs claim %s: %s\n", len(st.Owners), st.Target, strings.Join(owners, ", "))
	}
}

func rttText(d time.Duration) string { return fmt.Sprintf("%.3fms", ms(d)) }
