package arpprobe

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// batchConn is a fakeLAN conn that is also a BatchWriter; fail, if set,
// returns the error of the nth frame written (from 1, over the test).
type batchConn struct {
	FrameConn
	fail    func(n int) error
	written *int
	calls   *int // WriteFrames calls
}

func (c *batchConn) WriteFrames(frames [][]byte) (int, error) {
	*c.calls++
	for i, f := range frames {
		*c.written++
		if c.fail != nil {
			if err := c.fail(*c.written); err != nil {
				return i, err
			}
		}
		if err := c.FrameConn.WriteFrame(f); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

// batchLAN returns n healthy peers on interfaces 2 and 3 (alternately,
// when twoLinks), cached correctly, and a Prober whose conns are
// batchConns.
func batchLAN(t *testing.T, n int, twoLinks bool, fail func(int) error) (*Prober, []Peer, *int) {
	t.Helper()
	lan := &fakeLAN{}
	var peers []Peer
	for i := range n {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)})
		mac := net.HardwareAddr{2, 0xbb, 0, 0, byte(i >> 8), byte(i)}
		lan.add(ip.String(), mac, 0)
		ifindex := 2
		if twoLinks && i%2 == 1 {
			ifindex = 3
		}
		peers = append(peers, Peer{IP: ip, Ifindex: ifindex, Source: netip.MustParseAddr("198.18.0.1"),
			Cached: &Neighbor{IP: ip, Ifindex: ifindex, MAC: mac, State: StateStale}})
	}
	cfg := lan.config()
	listen := cfg.Listen
	var written, calls int
	cfg.Listen = func(ifi *net.Interface) (FrameConn, error) {
		c, err := listen(ifi)
		return &batchConn{FrameConn: c, fail: fail, written: &written, calls: &calls}, err
	}
	p := NewProber(cfg)
	t.Cleanup(func() { p.Close() })
	return p, peers, &calls
}

func TestSendBatches(t *testing.T) {
	const n = 200
	enobufs := func(k int) func(int) error {
		return func(w int) error {
			if w == k {
				return &net.OpError{Op: "write", Err: syscall.ENOBUFS}
			}
			return nil
		}
	}
	tests := []struct {
		name     string
		twoLinks bool
		fail     func(int) error
		verdict  Verdict // of every peer: "" (answered, not classified yet) or unknown
		maxCalls int     // WriteFrames calls at most
	}{
		{name: "one link, in batches of 64", maxCalls: (n + maxSendBatch - 1) / maxSendBatch},
		{name: "two links, a batch per link", twoLinks: true, maxCalls: n},
		{name: "a full buffer in mid-batch: resent", fail: enobufs(10), maxCalls: 10},
		{name: "interface gone: every peer unknown at once", verdict: VerdictUnknown, maxCalls: n,
			fail: func(int) error { return &net.OpError{Op: "write", Err: syscall.ENXIO} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, peers, calls := batchLAN(t, n, tt.twoLinks, tt.fail)
			opts := ProbeOptions{Timeout: 2 * time.Second, Attempts: 1, Broadcast: BroadcastNever}
			start := time.Now()
			st, err := p.Probe(context.Background(), peers, opts)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v; want well under the timeout of %v", d, opts.Timeout)
			}
			for _, pr := range peers {
				if pr.Verdict != tt.verdict {
					t.Fatalf("%s: verdict %q (%s); want %q", pr.IP, pr.Verdict, pr.Reason, tt.verdict)
				}
				if tt.verdict == "" && len(pr.Replies) != 1 {
					t.Fatalf("%s: %d replies; want 1", pr.IP, len(pr.Replies))
				}
			}
			wantSent := uint64(n)
			if tt.verdict == VerdictUnknown {
				wantSent = 0
			}
			if st.SentUnicast != wantSent || st.SentBroadcast != 0 {
				t.Errorf("sent %d unicast, %d broadcast; want %d, 0", st.SentUnicast, st.SentBroadcast, wantSent)
			}
			if *calls > tt.maxCalls {
				t.Errorf("%d WriteFrames calls; want at most %d", *calls, tt.maxCalls)
			}
		})
	}
}

// TestSendBatchesRotateRetries: while the buffer stays full, each
// attempt in turn uses up a retry, as when each is written on its own,
// rather than the first of a batch using up all of its retries.
func TestSendBatchesRotateRetries(t *testing.T) {
	fail := func(w int) error {
		if w <= 4 {
			return &net.OpError{Op: "write", Err: syscall.ENOBUFS}
		}
		return nil
	}
	p, peers, _ := batchLAN(t, 2, false, fail)
	if _, err := p.Probe(context.Background(), peers, ProbeOptions{Timeout: time.Second, Attempts: 1,
		Broadcast: BroadcastNever}); err != nil {
		t.Fatal(err)
	}
	for _, pr := range peers {
		if pr.Verdict != "" || len(pr.Replies) != 1 {
			t.Errorf("%s: verdict %q (%s), %d replies; want answered", pr.IP, pr.Verdict, pr.Reason, len(pr.Replies))
		}
	}
}
