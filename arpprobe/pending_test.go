package arpprobe

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestPendingChain checks the link's table of waiting probes: probes of
// several runs for one address are chained in the order they registered,
// and unregistering any of them keeps the others.
func TestPendingChain(t *testing.T) {
	ip := netip.MustParseAddr(peerIP)
	for _, tc := range []struct {
		name   string
		remove []int // indexes of probes to unregister, in order
		want   []int // indexes left, in delivery order
	}{
		{name: "none removed", want: []int{0, 1, 2}},
		{name: "first removed", remove: []int{0}, want: []int{1, 2}},
		{name: "middle removed", remove: []int{1}, want: []int{0, 2}},
		{name: "last removed", remove: []int{2}, want: []int{0, 1}},
		{name: "all removed", remove: []int{1, 0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &link{pending: make(map[uint32]*peerProbe)}
			var pps [3]*peerProbe
			for i := range pps {
				pps[i] = &peerProbe{peer: &Peer{IP: ip}}
				if err := l.register(pps[i]); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range tc.remove {
				l.unregister(pps[i])
			}
			var got []int
			for pp := l.pending[ipKey(ip)]; pp != nil; pp = pp.nextPending {
				for i := range pps {
					if pps[i] == pp {
						got = append(got, i)
					}
				}
			}
			if !equalInts(got, tc.want) {
				t.Errorf("waiting probes %v; want %v", got, tc.want)
			}
			if _, ok := l.pending[ipKey(ip)]; ok != (len(tc.want) > 0) {
				t.Errorf("address still in the table: %v; want %v", ok, len(tc.want) > 0)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConcurrentRunsShareAnAddress runs several Probes of one Prober at
// once, all asking the same address: each one gets the reply, and none
// is left waiting afterwards.
func TestConcurrentRunsShareAnAddress(t *testing.T) {
	lan := &fakeLAN{}
	lan.add(peerIP, macA, time.Millisecond)
	p := NewProber(lan.config())
	defer p.Close()
	const runs = 8
	var wg sync.WaitGroup
	peers := make([][]Peer, runs)
	for i := range peers {
		peers[i] = []Peer{{IP: netip.MustParseAddr(peerIP), Ifindex: 2, Source: netip.MustParseAddr("198.18.0.1"),
			Cached: entry(macA, StateStale)}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Probe(context.Background(), peers[i], fastOpts(BroadcastAuto)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, ps := range peers {
		if len(ps[0].Replies) != 1 || ps[0].Replies[0].MAC.String() != macA.String() {
			t.Errorf("run %d: replies %+v; want one from %s", i, ps[0].Replies, macA)
		}
	}
	l, err := p.link(2)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if n := len(l.pending); n != 0 {
		t.Errorf("%d addresses still waited for after every run ended; want 0", n)
	}
}
