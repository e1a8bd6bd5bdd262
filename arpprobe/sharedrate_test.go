package arpprobe

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Many small runs of one Prober, at once and one after another, send no
// more broadcasts together than ProberConfig.BroadcastRate allows: at
// most rate × elapsed + burst, whatever the machine's speed (the
// limiter starts full, and elapsed is measured around the Prober's whole
// life).
func TestProberSharedBroadcastRate(t *testing.T) {
	t.Parallel()
	const rate, runs, workers = 20, 24, 4
	burst := max(1, rate/4)
	lan := &fakeLAN{} // nobody answers: every attempt broadcasts
	cfg := lan.config()
	cfg.BroadcastRate = rate
	start := time.Now()
	p := NewProber(cfg)
	opts := ProbeOptions{Timeout: 10 * time.Millisecond, Attempts: 1, Broadcast: BroadcastAlways}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := w; r < runs; r += workers {
				peers := []Peer{
					{IP: netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + 2*r)}), Ifindex: 2, Interface: "fake2", Source: netip.MustParseAddr("198.18.0.1")},
					{IP: netip.AddrFrom4([4]byte{198, 18, 0, byte(3 + 2*r)}), Ifindex: 2, Interface: "fake2", Source: netip.MustParseAddr("198.18.0.1")},
				}
				if _, err := p.Probe(context.Background(), peers, opts); err != nil {
					t.Errorf("Probe: %v", err)
				}
			}
		})
	}
	wg.Wait()
	p.Close()
	elapsed := time.Since(start)
	got := lan.count(isBroadcast)
	bound := int(rate*elapsed.Seconds()) + burst
	if got > bound {
		t.Errorf("%d broadcasts in %v; want at most %d (%d/s × elapsed + burst %d)", got, elapsed, bound, rate, burst)
	}
	if want := 2 * runs; got != want {
		t.Errorf("%d broadcasts; want %d, one per peer (the limit delays, it does not drop)", got, want)
	}
	t.Logf("%d broadcasts in %v, bound %d", got, elapsed.Round(time.Millisecond), bound)
}
