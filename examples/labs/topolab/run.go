package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// runTimeout bounds one run of arpcheck; at its defaults it takes a few
// seconds at most on these tables.
const runTimeout = time.Minute

// runCase builds c, runs each of its commands o.runs times, and returns
// a row per command (one row saying why, if it could not be built). The
// error is set when the lab itself failed, not when arpcheck was wrong.
func runCase(ctx context.Context, c topoCase, o options, log io.Writer) (rows []row, err error) {
	t, err := c.build(ctx)
	if nd := (*noDriverError)(nil); errors.As(err, &nd) {
		return []row{{name: c.name, built: c.built, failure: "could not be built: " + nd.Error()}}, nil
	}
	if err != nil {
		return []row{{name: c.name, built: c.built, failure: "build failed: " + err.Error()}}, err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	built := c.built
	if t.note != "" {
		built += "; " + t.note
	}
	if err := holdEntries(t.prober); err != nil {
		return []row{{name: c.name, built: built, failure: err.Error()}}, err
	}
	for _, cmd := range t.commands {
		r := row{name: c.name, built: built, command: cmd.String(), truth: truthOf(cmd)}
		for range o.runs {
			out, err := runOnce(ctx, t, cmd, o.arpcheck)
			if err != nil {
				r.failure = err.Error()
				rows = append(rows, r)
				return rows, err
			}
			if !out.right {
				fmt.Fprintf(log, "  %s: %s; wrote: %s\n", cmd, strings.Join(out.got, "; "), strings.Join(out.wrote, "; "))
			}
			r.add(out)
		}
		fmt.Fprintf(log, "  %s: right in %d of %d\n", cmd, r.right, r.runs)
		rows = append(rows, r)
	}
	return rows, nil
}

// truthOf is the truth of cmd as the table shows it.
func truthOf(cmd command) string {
	var s []string
	for _, w := range cmd.wants {
		s = append(s, w.String())
	}
	return strings.Join(s, "; ")
}

// holdEntries raises locktime on every interface of the prober, so that
// the kernel does not correct a seeded entry from a reply it overhears:
// what changes in the table during a run is then arpcheck's doing.
func holdEntries(ns *netns.NS) error {
	links, err := ns.Handle().LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		err := ns.Sysctl("net/ipv4/neigh/"+l.Attrs().Name+"/locktime", "100000")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// runOnce seeds the prober's table, runs cmd once and judges it. The
// error is the lab's (the table could not be read or written, arpcheck
// could not be started); arpcheck's own failures are in the outcome.
func runOnce(ctx context.Context, t *topo, cmd command, bin string) (outcome, error) {
	if err := reseed(t.prober, t.seeds); err != nil {
		return outcome{}, err
	}
	before, err := readTable(t.prober)
	if err != nil {
		return outcome{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	args := append([]string{cmd.args[0], "--format", "json"}, cmd.args[1:]...)
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = defaultsEnv()
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	// A process started from a thread inside the namespace lives there.
	if err := t.prober.Do(c.Start); err != nil {
		return outcome{}, fmt.Errorf("start %s: %w", bin, err)
	}
	waitErr := c.Wait()
	if ctx.Err() != nil {
		return outcome{}, fmt.Errorf("%s: %w", cmd, context.Cause(ctx))
	}
	after, err := readTable(t.prober)
	if err != nil {
		return outcome{}, err
	}
	exit := c.ProcessState.ExitCode()
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		o := judge(cmd, report{}, exit, before, after)
		o.right = false
		o.got = append([]string{fmt.Sprintf("no JSON report (%v): %s", waitErr, strings.TrimSpace(stderr.String()))}, o.got...)
		return o, nil
	}
	return judge(cmd, rep, exit, before, after), nil
}

// defaultsEnv is this process's environment without ARPCHECK_ variables,
// so that arpcheck runs at its defaults whatever the caller's shell set.
func defaultsEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ARPCHECK_") {
			env = append(env, e)
		}
	}
	return env
}

// reseed empties the prober's IPv4 neighbour table and writes seeds.
func reseed(ns *netns.NS, seeds []seed) error {
	list, err := neighList(ns)
	if err != nil {
		return err
	}
	for i := range list {
		if err := ns.Handle().NeighDel(&list[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete neighbour %s: %w", list[i].IP, err)
		}
	}
	for _, s := range seeds {
		if err := ns.AddNeigh(s.link, s.ip, s.mac, s.state, s.flags); err != nil {
			return err
		}
	}
	return nil
}

// readTable reads the prober's IPv4 neighbour table.
func readTable(ns *netns.NS) (table, error) {
	links, err := ns.Handle().LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	list, err := neighList(ns)
	if err != nil {
		return nil, err
	}
	t := table{}
	for _, n := range list {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap().IsMulticast() {
			// The kernel's own entries for multicast groups (IGMP on a
			// bridge), which arpcheck never checks or writes.
			continue
		}
		t[key{Iface: names[n.LinkIndex], IP: ip.Unmap()}] = entry{
			MAC:    n.HardwareAddr.String(),
			Static: n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0,
			Extern: n.Flags&netlink.NTF_EXT_LEARNED != 0,
			State:  stateName(n.State),
		}
	}
	return t, nil
}

// neighList dumps the namespace's IPv4 neighbour entries, again if the
// table changed during the dump.
func neighList(ns *netns.NS) ([]netlink.Neigh, error) {
	list, err := ns.Handle().NeighList(0, netlink.FAMILY_V4)
	for try := 0; try < 3 && errors.Is(err, netlink.ErrDumpInterrupted); try++ {
		list, err = ns.Handle().NeighList(0, netlink.FAMILY_V4)
	}
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	return list, nil
}

// stateName names a NUD state as ip neigh does.
func stateName(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
	}
	var out []string
	for _, n := range names {
		if s&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "NONE"
	}
	return strings.Join(out, ",")
}
