package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// outcome is what play observed, for the test.
type outcome struct {
	before, after  []dialResult        // TCP connects from the client
	verify, repair *arpprobe.Report    // the two checks
	cacheAfter     []arpprobe.Neighbor // the client's entries at the end
}

// repairPolicy is what the demo's repair may change: the pinned entry is
// PERMANENT and wrong (it never heals by itself), and the dead peer's
// entry is deleted so the next packet makes the kernel ask by broadcast.
var repairPolicy = arpprobe.RepairPolicy{IncludePermanent: true, DeleteDead: true}

// play runs the scenario step by step, writing what happens to w. The lab
// is torn down before it returns, whatever happened.
func play(ctx context.Context, w io.Writer) (out *outcome, err error) {
	fmt.Fprintln(w, "The recycled-IP incident, rebuilt in throwaway network namespaces")

	step(w, 1, "Build the LAN %s: a bridge, one namespace per host", lanPrefix.Masked())
	l, err := buildLab(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		cerr := l.Close()
		if cerr == nil {
			step(w, 8, "Tear down: closed %d namespaces; the kernel removes them with their links", len(l.lan.Hosts)+2)
		}
		err = errors.Join(err, cerr)
	}()
	printLAN(w, l)

	// The library's view of the client: its kernel tables through
	// netlink sockets opened in the client's namespace, and a prober whose
	// sockets Check opens there (see check). Closed before the lab.
	k, err := arpprobe.OpenKernelAt(l.lan.Prober.NsHandle())
	if err != nil {
		return nil, err
	}
	defer k.Close()
	prober := arpprobe.NewProber(arpprobe.ProberConfig{})
	defer prober.Close()
	checker := &arpprobe.Checker{Table: k, Topology: k, Prober: prober}

	step(w, 2, "The client's ARP cache, read with arpprobe.Kernel")
	cache, err := k.Neighbors(ctx)
	if err != nil {
		return nil, err
	}
	printCache(w, cache)

	out = &outcome{}
	step(w, 3, "TCP connect from the client to port %d of each live peer (%v timeout)", port, dialTimeout)
	out.before = l.dialAll(ctx)
	printDials(w, out.before)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	step(w, 4, "Verify: Checker.Check without Repair (writes nothing)")
	if out.verify, err = check(ctx, l, checker, arpprobe.Options{}); err != nil {
		return nil, err
	}
	printVerify(w, out.verify)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	step(w, 5, "Repair: Checker.Check with Repair{IncludePermanent, DeleteDead}")
	out.repair, err = check(ctx, l, checker, arpprobe.Options{Repair: &repairPolicy})
	if out.repair == nil {
		return nil, err
	}
	printRepair(w, out.repair, out.verify)
	if err != nil {
		return nil, err
	}

	step(w, 6, "The client's ARP cache after the repair")
	if out.cacheAfter, err = k.Neighbors(ctx); err != nil {
		return nil, err
	}
	printCache(w, out.cacheAfter)

	step(w, 7, "TCP connect again")
	out.after = l.dialAll(ctx)
	printDials(w, out.after)
	return out, ctx.Err()
}

// check runs c.Check for every entry of the client's cache, from a thread
// inside the client's namespace: the prober opens its sockets (and looks
// interfaces up) in the namespace of the goroutine that calls Probe. The
// report's peers, in the kernel's order, are sorted by address.
func check(ctx context.Context, l *lab, c *arpprobe.Checker, opts arpprobe.Options) (*arpprobe.Report, error) {
	var rep *arpprobe.Report
	err := l.lan.Prober.Do(func() (err error) {
		rep, err = c.Check(ctx, nil, opts)
		return err
	})
	if rep != nil {
		slices.SortFunc(rep.Peers, func(a, b arpprobe.Peer) int { return a.IP.Compare(b.IP) })
	}
	return rep, err
}

// hold builds the broken LAN, shows it, prints how to enter the client's
// namespace, and waits until ctx is done; then it tears everything down.
func hold(ctx context.Context, w io.Writer) (err error) {
	l, err := buildLab(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	printLAN(w, l)
	k, err := arpprobe.OpenKernelAt(l.lan.Prober.NsHandle())
	if err != nil {
		return err
	}
	defer k.Close()
	cache, err := k.Neighbors(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nThe client's ARP cache:")
	printCache(w, cache)

	// A thread parked inside the client's namespace gives other programs
	// a way in through /proc, without naming the namespace.
	tid, release, err := park(l.lan.Prober)
	if err != nil {
		return err
	}
	defer release()
	fmt.Fprintf(w, "\nThe client's namespace stays up until Ctrl-C. Enter it from another shell:\n"+
		"  nsenter --net=/proc/%d/task/%d/ns/net arpcheck verify\n", os.Getpid(), tid)
	<-ctx.Done()
	fmt.Fprintln(w, "Tearing down.")
	return nil
}

// park locks a thread inside ns until release is called, and returns the
// thread's id. The process's main thread is never used: its /proc entry
// can show the process's namespace rather than the thread's, so another
// thread is taken instead.
func park(ns *netns.NS) (tid int, release func(), err error) {
	for range 8 {
		tid, release, err = parkOnce(ns)
		if err != nil || tid != os.Getpid() {
			return tid, release, err
		}
		// Hold the main thread while the next try takes another one.
		defer release()
	}
	return 0, nil, errors.New("recycledip: no thread other than the main one to park")
}

func parkOnce(ns *netns.NS) (tid int, release func(), err error) {
	tids := make(chan int, 1)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- ns.Do(func() error {
			tids <- unix.Gettid()
			<-stop
			return nil
		})
	}()
	select {
	case tid = <-tids:
		return tid, func() { close(stop); <-done }, nil
	case err = <-done:
		return 0, nil, err
	}
}
