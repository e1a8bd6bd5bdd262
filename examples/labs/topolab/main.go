// Command topolab checks arpcheck's verdicts on the topologies real hosts
// have (issue 11): two NICs on one subnet, policy routing, proxy ARP, a
// bridge port, an entry for the host's own address, extern_learn entries,
// and, as regression rows, a bridge, a macvlan, addresses of two subnets
// on one NIC and a /32 address with an onlink gateway.
//
//	sudo go run ./examples/labs/topolab                          # every case, 10 runs each
//	sudo go run ./examples/labs/topolab -runs 20 -cases multinic,bridgeport
//
// For each case it builds the topology in throwaway network namespaces,
// seeds the prober's neighbour table, runs the release arpcheck binary
// (`verify --format json`, and `repair` where the case is about repair)
// at its defaults inside the prober's namespace, and compares each verdict,
// what became of each entry and the exit status with the truth the lab
// built. It prints a markdown table: the case, what
// was built, the command, the truth, arpcheck's verdicts over the runs,
// in how many runs all of them were right, and whether arpcheck wrote any
// neighbour entry it was not asked to touch (the whole table is read
// before and after every run). Where this kernel lacks a driver a case
// needs (VRF, bond, VLAN, ipvlan, dummy), the row says it could not be
// built.
//
// The prober's locktime is raised (as the other labs do), so that the
// kernel never corrects a seeded entry itself from a reply it overhears:
// every change to the table after a run is arpcheck's.
//
// It needs root and builds arpcheck as released (CGO_ENABLED=0 go build
// -trimpath -ldflags='-s -w') unless -arpcheck names a binary. Frames go
// only between the namespaces it makes; they are unnamed and go when it
// ends. It exits 1 when a case could not be run (not when arpcheck was
// wrong: the table says that).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/arpcheck/arpcheck/examples/labs/internal/release"
)

// options are the command line's.
type options struct {
	runs     int
	cases    []string // names; empty: all
	arpcheck string   // binary; empty: build it
}

func main() {
	var o options
	names := flag.String("cases", "", "comma-separated cases to run (default: all): "+strings.Join(caseNames(), ","))
	flag.IntVar(&o.runs, "runs", 10, "runs of each command")
	flag.StringVar(&o.arpcheck, "arpcheck", "", "arpcheck binary (default: built from ./cmd/arpcheck as released)")
	flag.Parse()
	if flag.NArg() > 0 || o.runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if *names != "" {
		o.cases = strings.Split(*names, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "topolab:", err)
		os.Exit(1)
	}
}

// run runs the cases of o and writes the table to stdout, progress to
// stderr. It returns an error if a case could not be run.
func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	cases, err := selectCases(o.cases)
	if err != nil {
		return err
	}
	if o.arpcheck == "" {
		dir, err := os.MkdirTemp("", "topolab")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.arpcheck = filepath.Join(dir, "arpcheck")
		fmt.Fprintln(stderr, "building arpcheck")
		if err := release.Build(ctx, o.arpcheck, stderr); err != nil {
			return err
		}
	}
	var rows []row
	var failed []string
	for _, c := range cases {
		fmt.Fprintf(stderr, "case %s\n", c.name)
		rs, err := runCase(ctx, c, o, stderr)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
		}
		rows = append(rows, rs...)
	}
	writeTable(stdout, rows, o.runs)
	if len(failed) > 0 {
		return fmt.Errorf("cases not run: %s", strings.Join(failed, "; "))
	}
	return nil
}
