package main

// --pcap: a capture of every frame a run sends and receives, with its
// time, in the classic pcap format that tcpdump -r, tshark and Wireshark
// read (arpprobe.PcapWriter).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/arpcheck/arpcheck/arpprobe"
)

const flagPcap = "pcap"

func pcapFlag() cli.Flag {
	return &cli.StringFlag{Name: flagPcap, EnvVars: envVars(flagPcap), TakesFile: true,
		Usage: "write every frame sent and received, with its time, to `FILE` in pcap format (tcpdump -r, tshark)"}
}

// capture is an open --pcap file. A nil *capture records nothing.
type capture struct {
	path string
	f    *os.File
	w    *arpprobe.PcapWriter
}

// openCapture creates (or truncates) the --pcap file and writes its
// header; an empty path means no capture and a nil *capture.
func openCapture(path string) (*capture, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	w, err := arpprobe.NewPcapWriter(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--pcap %s: %w", path, err)
	}
	return &capture{path: path, f: f, w: w}, nil
}

// listener returns l (ListenARP when nil) recording into the capture.
func (c *capture) listener(l arpprobe.Listener) arpprobe.Listener {
	if c == nil {
		return l
	}
	if l == nil {
		l = arpprobe.ListenARP
	}
	return c.w.Listener(l)
}

// close writes out what is buffered and closes the file.
func (c *capture) close() error {
	if c == nil {
		return nil
	}
	err := c.w.Flush()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--pcap %s: %w", c.path, err)
	}
	return nil
}

// finish closes the capture at the end of a command that ended with err:
// a capture that could not be written makes the run end with status 3.
func (c *capture) finish(err error) error {
	cerr := c.close()
	if cerr == nil {
		return err
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{status: exitUnknown, err: errors.Join(ee.err, cerr)}
	}
	return fail(errors.Join(err, cerr))
}

// checkWithCapture is arpprobe.Check, with every frame of the run
// recorded to the --pcap file at path when one is given.
func checkWithCapture(ctx context.Context, peers []netip.Addr, opts arpprobe.Options, path string) (*arpprobe.Report, error) {
	if path == "" {
		return arpprobe.Check(ctx, peers, opts)
	}
	c, err := openCapture(path)
	if err != nil {
		return nil, err
	}
	opts.Tap = c.w.Tap()
	// Every tap call has returned when Check does: every frame received
	// is recorded before the file closes.
	rep, err := arpprobe.Check(ctx, peers, opts)
	if cerr := c.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return rep, err
}
