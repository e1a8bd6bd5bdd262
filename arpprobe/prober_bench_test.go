package arpprobe

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The benchmarks of the prober's hot path. Each op is one peer asked and
// answered: one exchange of a request and a reply (two for the "always"
// case, which asks by unicast and by broadcast). allocs/op is therefore
// the allocations per exchange, received frame included, of a whole
// Probe, setup and teardown amortised over batches of benchBatch peers.
//
//	go test -run '^$' -bench 'Probe' -benchmem ./arpprobe/
//
// BenchmarkProbeFake runs the engine (scheduling, rate limits, matching
// replies) against a conn that answers at once, without the kernel;
// BenchmarkProbeVeth runs it on a veth to a namespace whose kernel
// answers (needs root).

// benchBatch is how many peers one Probe asks in the benchmarks.
const benchBatch = 4096

// benchOptions lift the rate limits, so the benchmarks measure the
// prober, not the limiter's arithmetic of a polite default, and end a
// broadcast probe soon after its answer.
var benchOptions = ProbeOptions{
	Timeout:       time.Second,
	Attempts:      1,
	Rate:          100_000_000,
	BroadcastRate: 100_000_000,
	Settle:        time.Microsecond,
	BroadcastWait: time.Microsecond,
}

// benchCase is one kind of peer: cached or not, and the policy.
type benchCase struct {
	name   string
	cached bool
	policy BroadcastPolicy
	frames int // requests per peer
}

var benchCases = []benchCase{
	{"unicast", true, BroadcastAuto, 1},    // a healthy cache: one unicast each
	{"broadcast", false, BroadcastAuto, 1}, // nothing cached: one broadcast each
	{"always", true, BroadcastAlways, 2},   // unicast and broadcast each
}

// benchProbe probes b.N peers in batches and reports exchanges/s.
func benchProbe(b *testing.B, p *Prober, peers []Peer, opts ProbeOptions, frames int) {
	b.Helper()
	ctx := context.Background()
	// One batch before the clock starts opens the socket and grows the
	// prober's maps to their steady size.
	probeBatch(b, ctx, p, peers, opts)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(len(peers), b.N-done)
		probeBatch(b, ctx, p, peers[:n], opts)
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*frames)/b.Elapsed().Seconds(), "exchanges/s")
}

// probeBatch resets peers and probes them, failing the benchmark unless
// every one was answered by exactly one MAC.
func probeBatch(b *testing.B, ctx context.Context, p *Prober, peers []Peer, opts ProbeOptions) {
	for i := range peers {
		peers[i].Replies, peers[i].Verdict, peers[i].Reason = nil, "", ""
	}
	if _, err := p.Probe(ctx, peers, opts); err != nil {
		b.Fatal(err)
	}
	for i := range peers {
		if len(peers[i].Replies) != 1 || peers[i].Verdict != "" {
			b.Fatalf("peer %s: verdict %q (%s), %d replies; want 1 reply", peers[i].IP, peers[i].Verdict,
				peers[i].Reason, len(peers[i].Replies))
		}
	}
}

// benchPeers returns n peers from 198.19.0.0 up on interface ifindex,
// asked from src, cached with mac when cached is true.
func benchPeers(n, ifindex int, src netip.Addr, mac net.HardwareAddr, cached bool) []Peer {
	peers := make([]Peer, n)
	for i := range peers {
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], 198<<24|19<<16|uint32(i))
		peers[i] = Peer{IP: netip.AddrFrom4(a4), Ifindex: ifindex, Source: src}
		if cached {
			peers[i].Cached = &Neighbor{IP: peers[i].IP, Ifindex: ifindex, MAC: mac, State: StateStale}
		}
	}
	return peers
}

func BenchmarkProbeFake(b *testing.B) {
	const ifindex = 2
	ifi := &net.Interface{Index: ifindex, Name: "echo0", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	hostMAC := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := NewProber(ProberConfig{
				Listen:           func(*net.Interface) (FrameConn, error) { return newEchoConn(hostMAC), nil },
				InterfaceByIndex: func(int) (*net.Interface, error) { return ifi, nil },
			})
			defer p.Close()
			opts := benchOptions
			opts.Broadcast = bc.policy
			peers := benchPeers(benchBatch, ifindex, netip.MustParseAddr("198.18.0.1"), hostMAC, bc.cached)
			benchProbe(b, p, peers, opts, bc.frames)
		})
	}
}

// echoConn is a FrameConn on an ideal LAN where one host, with MAC host,
// owns every address: each request written is answered at once. It does
// not allocate.
type echoConn struct {
	host    [6]byte
	replies chan [minFrameLen]byte
	closed  chan struct{}
}

func newEchoConn(host net.HardwareAddr) *echoConn {
	return &echoConn{
		host:    [6]byte(host),
		replies: make(chan [minFrameLen]byte, 2*benchBatch+64),
		closed:  make(chan struct{}),
	}
}

func (c *echoConn) WriteFrame(b []byte) error {
	var f Frame
	if parseFrame(b, &f) != DropNone || f.Op != opRequest {
		return nil
	}
	if f.EtherDst != [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} && f.EtherDst != c.host {
		return nil // unicast to another MAC: nobody answers
	}
	var r [minFrameLen]byte
	copy(r[0:6], f.SenderMAC[:])
	copy(r[6:12], c.host[:])
	binary.BigEndian.PutUint16(r[12:14], etherTypeARP)
	copy(r[14:22], []byte{0, 1, 8, 0, 6, 4, 0, opReply})
	copy(r[offSenderMAC:], c.host[:])
	t4, s4 := f.TargetIP.As4(), f.SenderIP.As4()
	copy(r[offSenderIP:], t4[:])
	copy(r[offTargetMAC:], f.SenderMAC[:])
	copy(r[offTargetIP:], s4[:])
	select {
	case c.replies <- r:
		return nil
	case <-c.closed:
		return net.ErrClosed
	}
}

func (c *echoConn) ReadFrame(b []byte) (int, error) {
	select {
	case r := <-c.replies:
		return copy(b, r[:]), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *echoConn) SetReadDeadline(time.Time) error { return nil }

func (c *echoConn) Close() error {
	close(c.closed)
	return nil
}

// BenchmarkProbeVeth probes addresses that the kernel of another
// namespace answers for, over a veth: the whole path of a reply, from
// the socket's filter through the reader to the run. The other side
// owns 198.19.0.0/16 by a local route, so its kernel answers every
// address of it without one address each.
func BenchmarkProbeVeth(b *testing.B) {
	v := newVeth(b)
	lo, err := v.b.Handle().LinkByName("lo")
	if err != nil {
		b.Fatal(err)
	}
	err = v.b.Handle().RouteAdd(&netlink.Route{
		LinkIndex: lo.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4(198, 19, 0, 0).To4(), Mask: net.CIDRMask(16, 32)},
		Type:      unix.RTN_LOCAL,
		Table:     unix.RT_TABLE_LOCAL,
		Scope:     netlink.SCOPE_HOST,
	})
	if err != nil {
		b.Fatalf("local route for 198.19.0.0/16: %v", err)
	}
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := NewProber(ProberConfig{
				Listen: func(ifi *net.Interface) (c FrameConn, err error) {
					err = v.a.Do(func() error { c, err = ListenARP(ifi); return err })
					return c, err
				},
				InterfaceByIndex: func(int) (*net.Interface, error) { return v.ifA, nil },
			})
			defer p.Close()
			opts := benchOptions
			opts.Broadcast = bc.policy
			peers := benchPeers(benchBatch, v.ifA.Index, vethAddrA, v.ifB.HardwareAddr, bc.cached)
			benchProbe(b, p, peers, opts, bc.frames)
		})
	}
}
