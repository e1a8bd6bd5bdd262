package arpprobe

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// TestLANDumpInterrupted meets the kernel's interrupted dumps: while
// links come and go in a namespace, a dump of its links that spans
// several messages is flagged NLM_F_DUMP_INTR by the kernel (the test
// fails if none is). The Kernel's Links and Neighbors try such a dump
// again, and give either every link, each once, or an error that wraps
// ErrDumpInterrupted; never another error or a partial list. (The
// kernel does not flag neighbour dumps; the exact retries are
// TestKernelDumpRetries', with a fake dump.)
func TestLANDumpInterrupted(t *testing.T) {
	ns := netns.NewT(t)
	const pairs = 30 // 60 links: a link dump of several messages
	stable := map[string]bool{"lo": true}
	for i := range pairs {
		a, b := fmt.Sprintf("s%da", i), fmt.Sprintf("s%db", i)
		if err := netns.Veth(ns, a, ns, b); err != nil {
			t.Fatal(err)
		}
		stable[a], stable[b] = true, true
	}
	var (
		k     *Kernel
		churn *netlink.Handle
	)
	err := ns.Do(func() (err error) {
		if k, err = OpenKernel(); err != nil {
			return err
		}
		churn, err = netlink.NewHandle()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	defer churn.Close()

	// Links come and go until the dumps are done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churnErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "churn0"}, PeerName: "churn1"}
			if err := churn.LinkAdd(v); err != nil {
				churnErr = err
				return
			}
			if err := churn.LinkDel(v); err != nil {
				churnErr = err
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	ctx := t.Context()
	const dumps = 200
	var raw, failed int
	for range dumps {
		// The bare dump, to see that the kernel interrupts them.
		if _, err := k.h.LinkList(); errors.Is(err, netlink.ErrDumpInterrupted) {
			raw++
		}
		links, err := k.Links(ctx)
		if err != nil {
			if !errors.Is(err, netlink.ErrDumpInterrupted) {
				t.Fatalf("Links: %v; want success or ErrDumpInterrupted", err)
			}
			failed++
			continue
		}
		seen := map[string]int{}
		for _, l := range links {
			seen[l.Name]++
		}
		for name := range stable {
			if seen[name] != 1 {
				t.Fatalf("Links: %s listed %d times in %d links; want once", name, seen[name], len(links))
			}
		}
		if _, err := k.Neighbors(ctx); err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			t.Fatalf("Neighbors: %v; want success or ErrDumpInterrupted", err)
		}
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close
	if churnErr != nil {
		t.Fatal(churnErr)
	}
	t.Logf("%d of %d bare link dumps interrupted; %d of %d Links calls failed after %d attempts", raw, dumps, failed, dumps, dumpAttempts)
	if raw == 0 {
		t.Errorf("no link dump was interrupted: the test did not meet the fault")
	}
	if failed == dumps {
		t.Errorf("every Links call failed: the retries never got a whole dump")
	}
}
