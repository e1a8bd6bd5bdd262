package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// readPeers returns the peers named by the arguments and the --peers
// file (or standard input for "-"), without repeats, in first-seen order.
// given is false when neither was given: then the whole neighbour table
// is checked. Any malformed peer is an error naming the argument, or the
// file and line; nothing has been sent when it returns.
func readPeers(args []string, file string, stdin io.Reader) (peers []netip.Addr, given bool, err error) {
	var set arpprobe.PeerSet
	for i, a := range args {
		if err := set.Add(a); err != nil {
			return nil, true, fmt.Errorf("argument %d: %w", i+1, err)
		}
	}
	switch file {
	case "":
	case "-":
		if err := set.AddList(stdin, "stdin"); err != nil {
			return nil, true, err
		}
	default:
		f, err := os.Open(file)
		if err != nil {
			return nil, true, err
		}
		defer f.Close()
		if err := set.AddList(f, file); err != nil {
			return nil, true, err
		}
	}
	return set.Addrs(), len(args) > 0 || file != "", nil
}
