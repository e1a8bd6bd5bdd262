// Command recycledip rebuilds the recycled-IP incident in throwaway
// network namespaces, shows it, finds and repairs it with arpprobe, and
// removes everything again:
//
//	sudo go run ./examples/recycledip
//
// An instance died and a new one took its IPv4 address with a new MAC;
// the client's ARP cache still holds the old MAC, so its packets go to a
// dead MAC. The program builds such a LAN (198.18.0.0/24, one namespace
// per host behind a bridge), shows a TCP connect failing, runs arpprobe's
// verify and repair on the client, and shows the connect working.
//
// With -hold it builds the broken LAN, prints how to enter the client's
// namespace (to try the arpcheck command there) and waits for Ctrl-C.
//
// It needs root (namespaces, raw sockets, neighbour writes). Nothing it
// does touches the host's own interfaces; the namespaces are unnamed, so
// they vanish with the process even if it is killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	holdFlag := flag.Bool("hold", false, "build the broken LAN, print how to enter the client's namespace, and wait for Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: recycledip [-hold]\n\n"+
			"Rebuilds the recycled-IP incident in throwaway network namespaces, finds and\n"+
			"repairs it with arpprobe, and removes everything. Needs root.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	// Ctrl-C or SIGTERM cancels ctx; every step stops and the deferred
	// teardown runs before main returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := func() error {
		defer stop()
		if *holdFlag {
			return hold(ctx, os.Stdout)
		}
		return run(ctx, os.Stdout)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "recycledip:", err)
		os.Exit(1)
	}
}

// run plays the whole scenario, writing the demo to w. It returns an
// error if a step fails, or if the client still cannot connect to every
// live peer at the end.
func run(ctx context.Context, w io.Writer) error {
	out, err := play(ctx, w)
	if err != nil {
		return err
	}
	for _, d := range out.after {
		if d.err != nil {
			return fmt.Errorf("after the repair, connect to %s still fails: %w", d.to, d.err)
		}
	}
	return nil
}
