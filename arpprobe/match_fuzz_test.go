package arpprobe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
)

// The reply matcher's fuzz target probes three peers through a fake conn
// that, after each request the prober writes, delivers frames decoded
// from the input: replies from well-known and hostile MACs for the peers
// and for others, with one field spoiled or not, plus one raw frame.
//
// Whatever arrives, the matcher must not panic, a peer's replies must
// come from MACs that sent it a valid reply (an untagged or priority-
// tagged ARP reply with a unicast sender MAC claiming the peer's
// address), its owner must be its only such MAC, its verdict must agree
// with its replies, and a repair must plan no MAC but the owner.

// The peers of the fuzz target: 198.18.0.2 cached with macA, .3 cached
// with macB, .4 without an entry; .5 is not checked.
var fuzzPeerIPs = []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"),
	netip.MustParseAddr("198.18.0.4"), netip.MustParseAddr("198.18.0.5")}

// fuzzMACs are the sender MACs an event may use.
var fuzzMACs = []net.HardwareAddr{macA, macB, macC,
	{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0, 0, 0}, {0x01, 0, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1},
	proberMAC}

// fuzzEvent is one frame of the input, decoded from four bytes.
type fuzzEvent struct {
	after int // delivered right after the prober's write number after (from 1)
	frame []byte
}

// decodeFuzzEvents turns each four bytes of in into a frame: the write
// it follows, the sender address, the sender MAC and a spoiled field.
func decodeFuzzEvents(in []byte) []fuzzEvent {
	us := netip.MustParseAddr("198.18.0.1")
	var evs []fuzzEvent
	for ; len(in) >= 4; in = in[4:] {
		after, ipSel, macSel, spoil := int(in[0]%6)+1, in[1], in[2], in[3]
		ip := fuzzPeerIPs[int(ipSel)%len(fuzzPeerIPs)]
		mac := fuzzMACs[int(macSel)%len(fuzzMACs)]
		b := replyFrame(mac, ip, proberMAC, us)
		if ipSel >= 128 { // the Ethernet source is an attacker's, not the claimed MAC
			copy(b[6:12], macC)
		}
		switch spoil % 16 {
		case 1:
			b[15] = 6 // htype IEEE 802
		case 2:
			b[16] = 0x86 // ptype
		case 3:
			b[18] = spoil // hlen
		case 4:
			b[19] = spoil // plen
		case 5:
			b[21] = spoil >> 4 // opcode 0..15
		case 6:
			b = b[:int(spoil)%42] // truncated
		case 7:
			b = tag(b, etherTypeVLAN, uint16(spoil>>4)) // VLAN 0..15
		case 8:
			b = tag(b, etherTypeQinQ, uint16(spoil>>4))
		case 9:
			b[12] = 0x08 // EtherType 0x0808
			b[13] = 0x08
		case 10:
			b[21] = opRequest // a request claiming the address
		case 11:
			b = append(b, make([]byte, int(spoil))...) // padding, long trailers
		}
		evs = append(evs, fuzzEvent{after, b})
	}
	return evs
}

// validSender returns the sender of b if it is a reply the matcher may
// count: what parseFrame accepts, untagged or priority-tagged, opcode 2.
func validSender(b []byte) (netip.Addr, [6]byte, bool) {
	var f Frame
	if parseFrame(b, &f) != DropNone || f.VLAN != 0 || f.Op != opReply {
		return netip.Addr{}, [6]byte{}, false
	}
	return f.SenderIP, f.SenderMAC, true
}

// fuzzConn delivers the events after the prober's writes.
type fuzzConn struct {
	mu     sync.Mutex
	events []fuzzEvent
	writes int
	rx     chan []byte
	closed chan struct{}
	once   sync.Once
}

func (c *fuzzConn) WriteFrame(b []byte) error {
	c.mu.Lock()
	c.writes++
	var out [][]byte
	for _, ev := range c.events {
		if ev.after == c.writes {
			out = append(out, ev.frame)
		}
	}
	c.mu.Unlock()
	for _, b := range out {
		select {
		case c.rx <- b:
		case <-c.closed:
		}
	}
	return nil
}

func (c *fuzzConn) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-c.rx:
		return copy(b, f), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *fuzzConn) SetReadDeadline(time.Time) error { return nil }
func (c *fuzzConn) Close() error                    { c.once.Do(func() { close(c.closed) }); return nil }

func FuzzMatchReplies(f *testing.F) {
	// Seeds: hostile mixes by hand, and every frame of the captures in
	// pcapDir as the raw frame.
	for _, s := range []struct {
		opts   byte
		events []byte
	}{
		{0, []byte{0, 0, 0, 0}},                             // .2's cached MAC answers
		{1, []byte{0, 1, 2, 0, 1, 1, 1, 0}},                 // .3: a new owner; then the cached one
		{1, []byte{0, 2, 2, 0, 0, 2, 1, 0}},                 // .4: two owners
		{1, []byte{0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0}},     // broadcast, zero, multicast senders
		{1, []byte{0, 1, 2, 7, 0, 1, 2, 0x17, 0, 1, 2, 10}}, // VLAN 0, VLAN 1, a request
		{0, []byte{0, 3, 2, 0, 5, 0, 2, 0, 0, 128, 7, 0}},   // unchecked .5, late, prober's own MAC
		{1, []byte{0, 0, 2, 1, 0, 0, 2, 2, 0, 0, 2, 3, 0, 0, 2, 4, 0, 0, 2, 0x25, 0, 0, 2, 6}},
	} {
		f.Add(s.opts, s.events, []byte(nil))
	}
	paths, _ := filepath.Glob(filepath.Join(pcapDir, "*.pcap"))
	for _, path := range paths {
		for _, fr := range pcapFrames(f, path) {
			f.Add(byte(1), []byte{0, 0, 0, 0}, fr)
		}
	}

	f.Fuzz(func(t *testing.T, opts byte, events, raw []byte) {
		if len(events) > 4*64 || len(raw) > maxFrameBuffer {
			return
		}
		evs := decodeFuzzEvents(events)
		if len(raw) > 0 {
			evs = append(evs, fuzzEvent{after: 1, frame: raw})
		}
		valid := map[netip.Addr]map[[6]byte]bool{}
		for _, ev := range evs {
			if ip, mac, ok := validSender(ev.frame); ok {
				if valid[ip] == nil {
					valid[ip] = map[[6]byte]bool{}
				}
				valid[ip][mac] = true
			}
		}

		conn := &fuzzConn{events: evs, rx: make(chan []byte, len(evs)+1), closed: make(chan struct{})}
		cfg := (&fakeLAN{}).config()
		cfg.Listen = func(*net.Interface) (FrameConn, error) { return conn, nil }
		p := NewProber(cfg)
		defer p.Close()
		tbl := oneLAN(Neighbor{IP: fuzzPeerIPs[0], MAC: macA, State: StateReachable},
			Neighbor{IP: fuzzPeerIPs[1], MAC: macB, State: State(1) << (opts >> 4 & 7)})
		policy := []BroadcastPolicy{BroadcastAuto, BroadcastAlways, BroadcastNever}[int(opts%3)]
		probe := ProbeOptions{Timeout: 2 * time.Millisecond, Settle: time.Millisecond,
			Attempts: int(opts>>2%2) + 1, Broadcast: policy}
		repair := RepairPolicy{DeleteDead: true, IncludePermanent: true, DryRun: opts&8 != 0}
		c := Checker{Table: tbl, Topology: tbl, Prober: p}
		rep, err := c.Check(context.Background(), fuzzPeerIPs[:3], Options{Probe: probe, Repair: &repair})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}

		for _, pr := range rep.Peers {
			if err := checkPeerInvariants(pr, valid[pr.IP]); err != nil {
				t.Fatalf("%s: %v\n(peer %+v)", pr.IP, err, pr)
			}
		}
		// Nothing was written but the verified owner, and only for a
		// stale peer that had an entry.
		tbl.mu.Lock()
		defer tbl.mu.Unlock()
		for _, w := range tbl.writes {
			var ip, mac, state string
			fmt.Sscan(w, new(string), &ip, &mac, &state)
			pr := peerOf(rep, ip)
			switch {
			case pr == nil:
				t.Fatalf("write %q for an address not checked", w)
			case w[:3] == "set" && (pr.Verdict != VerdictStale || mac != pr.Owner.String()):
				t.Fatalf("write %q for a %s peer with owner %s", w, pr.Verdict, pr.Owner)
			case w[:3] == "del" && pr.Verdict != VerdictDead:
				t.Fatalf("write %q for a %s peer", w, pr.Verdict)
			case repair.DryRun:
				t.Fatalf("write %q in a dry run", w)
			}
		}
	})
}

// checkPeerInvariants checks a peer's outcome against the MACs that sent
// it valid replies.
func checkPeerInvariants(pr Peer, valid map[[6]byte]bool) error {
	for _, r := range pr.Replies {
		if len(r.MAC) != 6 || !valid[[6]byte(r.MAC)] {
			return fmt.Errorf("reply from %s, which sent no valid reply for the address", r.MAC)
		}
		if r.Count < 1 {
			return fmt.Errorf("reply from %s counted %d times", r.MAC, r.Count)
		}
	}
	if pr.Owner != nil {
		if len(pr.Owner) != 6 || !valid[[6]byte(pr.Owner)] {
			return fmt.Errorf("owner %s sent no valid reply for the address", pr.Owner)
		}
		if len(pr.Replies) != 1 || !bytes.Equal(pr.Replies[0].MAC, pr.Owner) {
			return fmt.Errorf("owner %s, but replies %+v", pr.Owner, pr.Replies)
		}
	}
	cachedOK := pr.Cached.Usable()
	switch pr.Verdict {
	case VerdictOK:
		if pr.Owner == nil || !bytes.Equal(pr.Owner, pr.Cached.MAC) {
			return fmt.Errorf("ok with owner %s, cached %v", pr.Owner, pr.Cached)
		}
	case VerdictStale:
		if !cachedOK || pr.Owner == nil || bytes.Equal(pr.Owner, pr.Cached.MAC) {
			return fmt.Errorf("stale with owner %s, cached %v", pr.Owner, pr.Cached)
		}
	case VerdictUncached:
		if cachedOK || pr.Owner == nil {
			return fmt.Errorf("uncached with owner %s, cached %v", pr.Owner, pr.Cached)
		}
	case VerdictConflict:
		if len(pr.Replies) < 2 || pr.Owner != nil {
			return fmt.Errorf("conflict with replies %+v, owner %s", pr.Replies, pr.Owner)
		}
	case VerdictDead:
		if len(pr.Replies) != 0 || pr.Owner != nil {
			return fmt.Errorf("dead with replies %+v", pr.Replies)
		}
	default:
		return fmt.Errorf("verdict %q", pr.Verdict)
	}
	return nil
}

func peerOf(rep *Report, ip string) *Peer {
	for i := range rep.Peers {
		if rep.Peers[i].IP.String() == ip {
			return &rep.Peers[i]
		}
	}
	return nil
}

// pcapFrames returns the frames of a capture, for seeds.
func pcapFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, data)
	}
}
