package main

import (
	"io"
	"net/netip"
	"os"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// readPeers returns the peers named by the arguments and the --peers
// file (or standard input for "-"), without repeats, in first-seen order.
// given is false when neither was given: then the whole neighbour table
// is checked. Any malformed peer is an error naming the argument, or the
// file and line (an *inputErr); nothing has been sent when it returns.
func readPeers(args []string, file string, stdin io.Reader) (peers []netip.Addr, given bool, err error) {
	var set arpprobe.PeerSet
	for i, a := range args {
		if err := set.Add(a); err != nil {
			return nil, true, &inputErr{arg: i + 1, err: err}
		}
	}
	switch file {
	case "":
	case "-":
		if err := set.AddList(stdin, "stdin"); err != nil {
			return nil, true, &inputErr{file: "stdin", err: err}
		}
	default:
		f, err := os.Open(file)
		if err != nil {
			return nil, true, &inputErr{file: file, err: err}
		}
		defer f.Close()
		if err := set.AddList(f, file); err != nil {
			return nil, true, &inputErr{file: file, err: err}
		}
	}
	return set.Addrs(), len(args) > 0 || file != "", nil
}
