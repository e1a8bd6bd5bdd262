package arpprobe

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Options controls a Check.
type Options struct {
	// Interface, if set, checks peers on this interface only; by default
	// the kernel's routes choose each peer's interface and source address.
	Interface string
	// Probe controls how the peers are asked.
	Probe ProbeOptions
	// Repair, if set, corrects wrong entries by this policy after the
	// probe; nil verifies only and writes nothing.
	Repair *RepairPolicy
	// Tap, if set, is called for every frame the check sends or
	// receives, as ProberConfig.Tap is, to record them (arpcheck --pcap).
	// The check then probes with a prober of its own, made with the
	// Checker's prober's configuration (whose Tap, if any, is called as
	// well) and closed before Check returns, so that every call has
	// returned by then and none comes after; its rate limits are its
	// own. (In a Watcher of package watch, where that would open sockets
	// for every check, use its Config.Prober.Tap.)
	Tap func(TapEvent)
}

// A Checker runs checks: snapshot, probe, classify and, if asked,
// repair. Its parts are interfaces so that programs and tests can supply
// their own; Kernel and Prober are the real ones. A Checker may be reused
// and used by several goroutines at once.
type Checker struct {
	Table    NeighborTable
	Topology Topology
	Prober   *Prober
}

// Check opens the kernel's tables and a prober in the calling
// goroutine's network namespace, runs one Checker.Check and closes them.
// It sends frames (CAP_NET_RAW) and, with opts.Repair, writes neighbour
// entries (CAP_NET_ADMIN).
func Check(ctx context.Context, peers []netip.Addr, opts Options) (*Report, error) {
	k, err := OpenKernel()
	if err != nil {
		return nil, err
	}
	defer k.Close()
	p := NewProber(ProberConfig{})
	defer p.Close()
	c := Checker{Table: k, Topology: k, Prober: p}
	return c.Check(ctx, peers, opts)
}

// Check verifies the cache entries of peers (duplicates are checked
// once; nil or empty means every IPv4 entry of the table, except on
// loopback and NOARP interfaces). A named peer is checked on every
// interface that holds an entry for it, one Peer each, as the whole
// table would be, or on its route's interface when none does (see "Which
// entries a peer means" in the package documentation):
//
//  1. snapshot: one dump of the neighbour table, links and routes, taken
//     before any frame is sent;
//  2. probe: Prober.Probe, bounded by ctx (unfinished peers: unknown);
//  3. classify: Classify on the snapshot and the replies;
//  4. repair, if opts.Repair is set: PlanRepairs and ApplyRepairs;
//  5. one more dump, for each peer's After.
//
// If the kernel dropped received frames while a peer's attempt was
// awaited (the receive ring overran, Stats.KernelDrops), a silence then
// proves nothing: the peer is asked again, and is unknown, with the
// reason, if drops hid every attempt that could tell (see Prober.Probe).
// Unknown peers are not repaired.
//
// The report is returned whenever probing started, together with an
// error if a repair was cut short (ctx done, missing privilege). Bad
// options, an unknown interface or a missing privilege to probe return
// an error before anything is sent.
func (c *Checker) Check(ctx context.Context, peers []netip.Addr, opts Options) (*Report, error) {
	start := time.Now()
	if _, err := opts.Probe.WithDefaults(); err != nil {
		return nil, err
	}
	snapshot, err := c.Table.Neighbors(ctx)
	if err != nil {
		return nil, fmt.Errorf("arpprobe: snapshot: %w", err)
	}
	links, err := c.Topology.Links(ctx)
	if err != nil {
		return nil, fmt.Errorf("arpprobe: snapshot: %w", err)
	}
	var ps []Peer
	if len(peers) == 0 {
		ps = PeersFromNeighbors(snapshot, links, opts.Interface)
		if opts.Interface != "" && !hasLink(links, opts.Interface) {
			return nil, fmt.Errorf("arpprobe: interface %q: %w", opts.Interface, ErrUnknownInterface)
		}
	} else {
		routes, err := c.Topology.Routes(ctx)
		if err != nil {
			return nil, fmt.Errorf("arpprobe: snapshot: %w", err)
		}
		ps, err = Resolve(dedupe(peers), links, routes, opts.Interface)
		if err != nil {
			return nil, err
		}
		ps = onEveryEntry(ps, snapshot, links, opts.Interface)
	}
	cached := indexNeighbors(snapshot)
	for i := range ps {
		p := &ps[i]
		if p.Verdict == "" {
			if n := cached[neighKey{p.Ifindex, p.IP}]; n != nil {
				cp := *n
				p.Cached = &cp
			}
		}
	}

	prober := c.Prober
	if opts.Tap != nil {
		prober = c.Prober.withTap(opts.Tap)
		defer prober.Close() // before Check returns: every tap call has
	}
	rep := &Report{Peers: ps, Started: start}
	rep.Stats, err = prober.Probe(ctx, ps, opts.Probe)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		p := &ps[i]
		if p.Verdict == "" {
			p.Verdict, p.Owner = Classify(p.Cached, p.Replies)
		}
		if p.Action == "" {
			p.Action = ActionNone
		}
	}

	var repairErr error
	if opts.Repair != nil {
		plan := PlanRepairs(ps, *opts.Repair)
		repairErr = ApplyRepairs(ctx, c.Table, ps, plan, *opts.Repair)
	}

	// The end state, read with a context of its own so that it is
	// reported even when ctx ended the run.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if end, err := c.Table.Neighbors(endCtx); err == nil {
		after := indexNeighbors(end)
		for i := range ps {
			if n := after[neighKey{ps[i].Ifindex, ps[i].IP}]; n != nil && ps[i].Ifindex != 0 {
				cp := *n
				ps[i].After = &cp
			}
		}
	}
	for i := range ps {
		rep.Summary.add(&ps[i])
	}
	rep.Duration = time.Since(start)
	return rep, repairErr
}

func hasLink(links []Link, name string) bool {
	for _, l := range links {
		if l.Name == name {
			return true
		}
	}
	return false
}

// dedupe returns addrs without repeats, in first-seen order.
func dedupe(addrs []netip.Addr) []netip.Addr {
	seen := make(map[netip.Addr]struct{}, len(addrs))
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if _, ok := seen[a]; ok {
			continue
		}
		seen[a] = struct{}{}
		out = append(out, a)
	}
	return out
}
