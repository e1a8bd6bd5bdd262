package arpprobe

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// pcapDir holds the repository's captures (testdata/pcaps at its root),
// which the library's and the CLI's tests share.
const pcapDir = "../testdata/pcaps"

// The captures in pcapDir are checks as the prober saw them: the
// requests it sent and the frames it received, in order and with their
// times. The replay tests feed them through a replayConn to the real
// Prober and Checker, and assert the verdicts, so that the matcher is
// tested on frames real kernels sent, without privileges.
//
// Most were recorded on namespace LANs by TestRecordPcaps (run it with
// -record-pcaps to write them here); those in craftedPcaps are made by
// code. Every capture has a scenario below, and every scenario a capture.

// The prober of every capture: netns.HostMAC(0) and the LAN's first address.
var (
	replayProberMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0}
	replayDeadMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x99}
)

// replayHostMAC is netns.HostMAC(n): the MAC of host n of a recorded LAN.
func replayHostMAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, 0, byte(n >> 8), byte(n)}
}

// The interfaces of the captures: the LAN's interface and a VLAN on it.
var replayLinks = []Link{
	{Index: 2, Name: "lan0", MAC: replayProberMAC, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}},
	{Index: 3, Name: "lan0.7", MAC: replayProberMAC, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.7.1/24")}},
}

// replayPeer is one peer of a scenario: the entry the prober's table held
// (cached; empty for none) and what the check must conclude.
type replayPeer struct {
	ip      string
	cached  net.HardwareAddr
	state   State
	verdict Verdict
	owner   net.HardwareAddr // nil for none
	macs    int              // distinct MACs that answered
}

// replayScenario is one capture: the check it holds and its outcome.
type replayScenario struct {
	name  string // <pcapDir>/<name>.pcap
	desc  string
	probe ProbeOptions
	peers []replayPeer
	// dropped are the exact counts of received frames dropped by reason;
	// nil means none for any reason (unsolicited replies aside, whose
	// number on a real LAN depends on timing).
	dropped map[DropReason]uint64
}

// replayProbe are the probe options of the recorded checks.
func replayProbe(b BroadcastPolicy) ProbeOptions {
	return ProbeOptions{Timeout: 150 * time.Millisecond, Attempts: 2, Broadcast: b}
}

var replayScenarios = []replayScenario{
	{name: "healthy", desc: "the cached MAC answers the unicast request: no broadcast",
		probe: replayProbe(BroadcastAuto),
		peers: []replayPeer{{ip: "198.18.0.2", cached: replayHostMAC(1), state: StateStale,
			verdict: VerdictOK, owner: replayHostMAC(1), macs: 1}}},
	{name: "stale", desc: "the cached MAC is silent; the new owner answers the broadcast",
		probe: replayProbe(BroadcastAuto),
		peers: []replayPeer{{ip: "198.18.0.3", cached: replayDeadMAC, state: StateStale,
			verdict: VerdictStale, owner: replayHostMAC(2), macs: 1}}},
	{name: "dead", desc: "nobody answers two unicast and one broadcast request",
		probe: replayProbe(BroadcastAuto),
		peers: []replayPeer{{ip: "198.18.0.9", cached: replayDeadMAC, state: StateStale, verdict: VerdictDead}}},
	{name: "conflict", desc: "two hosts answer the broadcast request for one address",
		probe: replayProbe(BroadcastAlways),
		peers: []replayPeer{{ip: "198.18.0.5", cached: replayHostMAC(3), state: StateReachable,
			verdict: VerdictConflict, macs: 2}}},
	{name: "uncached", desc: "no entry: one broadcast request, one owner",
		probe: replayProbe(BroadcastAuto),
		peers: []replayPeer{{ip: "198.18.0.6", verdict: VerdictUncached, owner: replayHostMAC(5), macs: 1}}},
	{name: "padded", desc: "a host whose replies are padded to 60 bytes and carry a 4-byte trailer, as NICs send them",
		probe: replayProbe(BroadcastAlways),
		peers: []replayPeer{{ip: "198.18.0.7", cached: replayHostMAC(6), state: StateStale,
			verdict: VerdictOK, owner: replayHostMAC(6), macs: 1}}},
	{name: "vlan", desc: "crafted: a check on VLAN 7 (lan0.7) as seen on lan0, tags and all, with replies from other VLANs",
		probe: replayProbe(BroadcastAlways),
		peers: []replayPeer{{ip: "198.18.7.2", cached: replayHostMAC(1), state: StateStale,
			verdict: VerdictOK, owner: replayHostMAC(1), macs: 1}},
		dropped: map[DropReason]uint64{DropVLAN: 2}},
	{name: "lan", desc: "five peers at once, their frames interleaved",
		probe: replayProbe(BroadcastAuto),
		peers: []replayPeer{
			{ip: "198.18.0.2", cached: replayHostMAC(1), state: StateStale, verdict: VerdictOK, owner: replayHostMAC(1), macs: 1},
			{ip: "198.18.0.3", cached: replayDeadMAC, state: StateStale, verdict: VerdictStale, owner: replayHostMAC(2), macs: 1},
			{ip: "198.18.0.5", cached: replayDeadMAC, state: StateStale, verdict: VerdictConflict, macs: 2},
			{ip: "198.18.0.6", verdict: VerdictUncached, owner: replayHostMAC(5), macs: 1},
			{ip: "198.18.0.9", cached: replayDeadMAC, state: StateStale, verdict: VerdictDead},
		}},
	{name: "malformed", desc: "crafted: every kind of hostile frame around a healthy, a stale and a dead peer",
		probe: ProbeOptions{Timeout: 100 * time.Millisecond, Attempts: 2, Broadcast: BroadcastAlways},
		peers: []replayPeer{
			{ip: "198.18.0.2", cached: replayHostMAC(1), state: StateReachable, verdict: VerdictOK, owner: replayHostMAC(1), macs: 1},
			{ip: "198.18.0.3", cached: replayDeadMAC, state: StateStale, verdict: VerdictStale, owner: replayHostMAC(2), macs: 1},
			{ip: "198.18.0.9", cached: replayDeadMAC, state: StateStale, verdict: VerdictDead},
		},
		dropped: map[DropReason]uint64{DropShort: 5, DropNotARP: 2, DropFormat: 8, DropOpcode: 6,
			DropSender: 9, DropUnsolicited: 3, DropVLAN: 1}},
}

func scenarioByName(name string) *replayScenario {
	for i := range replayScenarios {
		if replayScenarios[i].name == name {
			return &replayScenarios[i]
		}
	}
	return nil
}

// iface returns the link a scenario's peers are on.
func (sc *replayScenario) iface() Link {
	if strings.HasPrefix(sc.peers[0].ip, "198.18.7.") {
		return replayLinks[1]
	}
	return replayLinks[0]
}

// table returns the prober's table as it was when the capture was made.
func (sc *replayScenario) table() *fakeTable {
	t := &fakeTable{links: replayLinks}
	for _, l := range replayLinks {
		t.routes = append(t.routes, Route{Dst: l.Addrs[0].Masked(), Ifindex: l.Index, Src: l.Addrs[0].Addr()})
	}
	l := sc.iface()
	for _, p := range sc.peers {
		if p.cached != nil {
			t.entries = append(t.entries, Neighbor{IP: netip.MustParseAddr(p.ip), Ifindex: l.Index,
				Interface: l.Name, MAC: p.cached, State: p.state})
		}
	}
	return t
}

// replayKey names a request: where it went and whom it asked for.
type replayKey struct {
	dst [6]byte
	ip  netip.Addr
}

// delayed is a received frame and how long after its cause it came.
type delayed struct {
	after time.Duration
	frame []byte
}

// replayConn is a FrameConn that plays a capture back. Each received
// frame of the capture is taken to answer the latest request before it
// for the address it claims (its sender address), or else the latest
// request; when the prober writes a request, the frames that answered
// the same request in the capture (same destination and target, counted
// in order) are delivered with the delays they had. Frames before the
// first request come with the first write. The conn delivers frames as
// they were captured, 802.1Q tags included, except that a conn standing
// for a VLAN device takes its own VLAN's tag off, as the kernel does.
type replayConn struct {
	requests map[replayKey][]int // indexes into answers, in capture order
	answers  [][]delayed
	prelude  []delayed
	untag    uint16 // the VLAN ID of the interface, 0 for none

	mu       sync.Mutex
	written  map[replayKey]int
	strange  []string // requests the capture does not hold
	started  bool
	timers   []*time.Timer
	rx       chan []byte
	closed   chan struct{}
	closeOne sync.Once
}

// isOurRequest reports whether a captured frame is a request the prober
// sent.
func isOurRequest(b []byte) (Frame, bool) {
	f, err := ParseFrame(b)
	return f, err == nil && f.Op == opRequest && f.SenderMAC == [6]byte(replayProberMAC)
}

func newReplayConn(recs []pcapRecord) *replayConn {
	c := &replayConn{requests: map[replayKey][]int{}, written: map[replayKey]int{},
		rx: make(chan []byte, 1<<14), closed: make(chan struct{})}
	type sent struct {
		t   time.Time
		ip  netip.Addr
		idx int
	}
	var reqs []sent
	for _, r := range recs {
		if f, ok := isOurRequest(r.frame); ok {
			k := replayKey{f.EtherDst, f.TargetIP}
			c.requests[k] = append(c.requests[k], len(c.answers))
			c.answers = append(c.answers, nil)
			reqs = append(reqs, sent{r.t, f.TargetIP, len(c.answers) - 1})
			continue
		}
		if len(reqs) == 0 {
			c.prelude = append(c.prelude, delayed{0, r.frame})
			continue
		}
		cause := reqs[len(reqs)-1]
		var f Frame
		if d := parseFrame(r.frame, &f); d == DropNone || d == DropSender {
			for i := len(reqs) - 1; i >= 0; i-- {
				if reqs[i].ip == f.SenderIP {
					cause = reqs[i]
					break
				}
			}
		}
		c.answers[cause.idx] = append(c.answers[cause.idx], delayed{r.t.Sub(cause.t), r.frame})
	}
	return c
}

func (c *replayConn) WriteFrame(b []byte) error {
	f, err := ParseFrame(b)
	if err != nil {
		return err
	}
	k := replayKey{f.EtherDst, f.TargetIP}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []delayed
	if !c.started {
		c.started = true
		out = append(out, c.prelude...)
	}
	n := c.written[k]
	c.written[k]++
	if idx := c.requests[k]; n < len(idx) {
		out = append(out, c.answers[idx[n]]...)
	} else {
		c.strange = append(c.strange, fmt.Sprintf("request %d to %x for %s", n+1, f.EtherDst, f.TargetIP))
	}
	for _, d := range out {
		if d.after <= 0 {
			c.deliver(d.frame)
			continue
		}
		c.timers = append(c.timers, time.AfterFunc(d.after, func() { c.deliver(d.frame) }))
	}
	return nil
}

func (c *replayConn) deliver(b []byte) {
	if c.untag != 0 && len(b) >= 18 && binary.BigEndian.Uint16(b[12:14]) == etherTypeVLAN &&
		binary.BigEndian.Uint16(b[14:16])&0x0fff == c.untag {
		b = append(bytes.Clone(b[:12]), b[16:]...)
	}
	select {
	case c.rx <- b:
	case <-c.closed:
	}
}

func (c *replayConn) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-c.rx:
		return copy(b, f), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *replayConn) SetReadDeadline(time.Time) error { return nil }

func (c *replayConn) Close() error {
	c.closeOne.Do(func() {
		c.mu.Lock()
		for _, t := range c.timers {
			t.Stop()
		}
		c.mu.Unlock()
		close(c.closed)
	})
	return nil
}

// replay runs the scenario's check on a capture and returns the report
// and the requests the prober sent that the capture does not hold.
func replay(t testing.TB, sc *replayScenario, recs []pcapRecord) (*Report, []string) {
	t.Helper()
	conn := newReplayConn(recs)
	if sc.iface().Name == "lan0.7" {
		conn.untag = 7
	}
	p := NewProber(ProberConfig{
		Listen: func(*net.Interface) (FrameConn, error) { return conn, nil },
		InterfaceByIndex: func(i int) (*net.Interface, error) {
			for _, l := range replayLinks {
				if l.Index == i {
					return &net.Interface{Index: i, Name: l.Name, HardwareAddr: l.MAC}, nil
				}
			}
			return nil, fmt.Errorf("no interface %d", i)
		},
	})
	defer p.Close()
	tbl := sc.table()
	var peers []netip.Addr
	for _, pr := range sc.peers {
		peers = append(peers, netip.MustParseAddr(pr.ip))
	}
	c := Checker{Table: tbl, Topology: tbl, Prober: p}
	rep, err := c.Check(context.Background(), peers, Options{Probe: sc.probe})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	return rep, slices.Clone(conn.strange)
}

// checkReplay compares a replayed check with the scenario.
func checkReplay(t testing.TB, sc *replayScenario, rep *Report, strange []string) {
	t.Helper()
	if len(strange) > 0 {
		t.Errorf("the prober sent requests the capture does not hold, so the replay is not faithful: %v", strange)
	}
	for i, want := range sc.peers {
		p := rep.Peers[i]
		if p.IP.String() != want.ip || p.Verdict != want.verdict || p.Owner.String() != want.owner.String() ||
			len(p.Replies) != want.macs {
			t.Errorf("%s: verdict %s owner %q, %d MACs (replies %+v, reason %q); want %s owner %q, %d MACs",
				p.IP, p.Verdict, p.Owner, len(p.Replies), p.Replies, p.Reason, want.verdict, want.owner, want.macs)
		}
		for _, r := range p.Replies {
			if !unicastMAC([6]byte(r.MAC)) {
				t.Errorf("%s: reply from %s, which no host can have", p.IP, r.MAC)
			}
		}
	}
	for r := DropShort; r < numDropReasons; r++ {
		got := rep.Stats.Dropped[r]
		switch want, ok := sc.dropped[r]; {
		case ok && got != want:
			t.Errorf("dropped[%s] = %d; want %d", r, got, want)
		case !ok && r != DropUnsolicited && got != 0:
			t.Errorf("dropped[%s] = %d; want none", r, got)
		}
	}
}

// readPcapFile reads a capture from pcapDir.
func readPcapFile(t testing.TB, path string) []pcapRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readPcap(t, f)
}

func TestReplayPcaps(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(pcapDir, "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".pcap")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			sc := scenarioByName(name)
			if sc == nil {
				t.Fatalf("%s has no scenario in replay_test.go", path)
			}
			t.Parallel()
			recs := readPcapFile(t, path)
			rep, strange := replay(t, sc, recs)
			checkReplay(t, sc, rep, strange)
		})
	}
	for _, sc := range replayScenarios {
		if !seen[sc.name] {
			t.Errorf("scenario %s has no capture ../testdata/pcaps/%s.pcap (record it with -record-pcaps)", sc.name, sc.name)
		}
	}
}

// TestReplayFramesAsRecorded checks what the captures hold, so that the
// replays above test what they claim: unpadded 42-byte replies from the
// namespace LANs, padded ones with a trailer, tagged ones.
func TestReplayFramesAsRecorded(t *testing.T) {
	sizes := func(name string) (req, rep map[int]int, tags map[uint16]int) {
		req, rep, tags = map[int]int{}, map[int]int{}, map[uint16]int{}
		for _, r := range readPcapFile(t, filepath.Join(pcapDir, name+".pcap")) {
			var f Frame
			if parseFrame(r.frame, &f) != DropNone {
				continue
			}
			if binary.BigEndian.Uint16(r.frame[12:14]) == etherTypeVLAN {
				tags[f.VLAN]++
			}
			if f.Op == opRequest {
				req[len(r.frame)]++
			} else {
				rep[len(r.frame)]++
			}
		}
		return
	}
	if _, rep, _ := sizes("stale"); rep[42] == 0 || len(rep) != 1 {
		t.Errorf("stale.pcap replies by length %v; want only unpadded 42-byte frames (veth)", rep)
	}
	if _, rep, _ := sizes("padded"); rep[64] == 0 || len(rep) != 1 {
		t.Errorf("padded.pcap replies by length %v; want 60 bytes plus a 4-byte trailer", rep)
	}
	if _, _, tags := sizes("vlan"); tags[7] == 0 || tags[8] == 0 {
		t.Errorf("vlan.pcap: frames by VLAN %v; want VLAN 7 and another", tags)
	}
}

// craftedPcaps are the captures made by code rather than recorded.
var craftedPcaps = map[string]func() []pcapRecord{
	"malformed": craftMalformed,
	"vlan":      craftVLAN,
}

// TestCraftedPcapsUpToDate checks that the committed crafted captures are
// what the code below makes.
func TestCraftedPcapsUpToDate(t *testing.T) {
	for name, craft := range craftedPcaps {
		want := craftedPcap(t, craft())
		got, err := os.ReadFile(filepath.Join(pcapDir, name+".pcap"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("../testdata/pcaps/%s.pcap differs from what the code crafts; regenerate it with -record-pcaps", name)
		}
	}
}

// craftedPcap encodes records as a capture.
func craftedPcap(t testing.TB, recs []pcapRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WriteFrame(r.t, r.frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// craftARP builds an unpadded ARP frame field by field, so that any field
// may be wrong.
func craftARP(dst, src net.HardwareAddr, htype, ptype uint16, hlen, plen uint8, op uint16,
	sha net.HardwareAddr, spa string, tha net.HardwareAddr, tpa string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, dst...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, etherTypeARP)
	b = binary.BigEndian.AppendUint16(b, htype)
	b = binary.BigEndian.AppendUint16(b, ptype)
	b = append(b, hlen, plen)
	b = binary.BigEndian.AppendUint16(b, op)
	s4, t4 := netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()
	b = append(b, sha...)
	b = append(b, s4[:]...)
	b = append(b, tha...)
	b = append(b, t4[:]...)
	return b
}

// craftMalformed returns the frames of malformed.pcap: the requests the
// scenario's check sends (Always, two attempts: the dead peer is asked
// twice) and around them every kind of frame a hostile LAN can send.
func craftMalformed() []pcapRecord {
	var (
		us       = replayProberMAC
		bcast    = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		zero     = net.HardwareAddr{0, 0, 0, 0, 0, 0}
		attacker = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x01}
		o2, o3   = replayHostMAC(1), replayHostMAC(2)
		base     = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		now      = base
		out      []pcapRecord
	)
	at := func(d time.Duration, b []byte) { out = append(out, pcapRecord{now.Add(d), b}) }
	request := func(dst net.HardwareAddr, ip string) {
		now = now.Add(10 * time.Millisecond)
		tha := dst
		if bytes.Equal(dst, bcast) {
			tha = zero
		}
		at(0, craftARP(dst, us, 1, 0x0800, 6, 4, opRequest, us, "198.18.0.1", tha, ip))
	}
	reply := func(src net.HardwareAddr, sha net.HardwareAddr, ip string) []byte {
		return craftARP(us, src, 1, 0x0800, 6, 4, opReply, sha, ip, us, "198.18.0.1")
	}
	withField := func(b []byte, off int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[off:], v)
		return c
	}
	padded := func(b []byte) []byte {
		c := append(bytes.Clone(b), make([]byte, 60-len(b))...)
		return append(c, 0xde, 0xad, 0xbe, 0xef) // a trailer, as some NICs leave
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }

	// Before anything is asked: gratuitous ARP for other addresses, and
	// a late reply to an earlier run.
	at(0, craftARP(bcast, attacker, 1, 0x0800, 6, 4, opRequest, attacker, "198.18.0.77", zero, "198.18.0.77"))
	at(ms(1), craftARP(bcast, attacker, 1, 0x0800, 6, 4, opReply, attacker, "198.18.0.78", bcast, "198.18.0.78"))
	at(ms(2), reply(attacker, attacker, "198.18.0.50"))

	// The healthy peer .2, asked by unicast and broadcast.
	good2 := reply(o2, o2, "198.18.0.2")
	request(o2, "198.18.0.2")
	at(ms(1), good2[:30])                                                   // truncated
	at(ms(1), withField(reply(attacker, attacker, "198.18.0.2"), 14, 0, 6)) // htype IEEE 802
	at(ms(1), withField(reply(attacker, attacker, "198.18.0.2"), 16, 0x86, 0xdd))
	at(ms(1), withField(reply(attacker, attacker, "198.18.0.2"), 18, 8))    // hlen 8
	at(ms(1), withField(reply(attacker, attacker, "198.18.0.2"), 19, 16))   // plen 16
	at(ms(1), withField(reply(attacker, attacker, "198.18.0.2"), 20, 0, 3)) // RARP request
	at(ms(1), withField(reply(attacker, attacker, "198.18.0.2"), 20, 0, 0)) // opcode 0
	at(ms(2), good2)
	request(bcast, "198.18.0.2")
	at(ms(1), padded(good2))
	at(ms(1), good2)                             // a duplicate
	at(ms(1), tag(good2, etherTypeVLAN, 0x6000)) // priority tag, VLAN 0: ours
	for _, m := range []net.HardwareAddr{bcast, {0x01, 0, 0x5e, 0, 0, 1}, zero, {0x33, 0x33, 0, 0, 0, 1}} {
		at(ms(2), reply(attacker, m, "198.18.0.2")) // sender MACs no host has
	}
	ipv4 := withField(padded(good2)[:60], 12, 0x08, 0x00)
	at(ms(3), ipv4)                                                                                  // not ARP
	at(ms(3), tag(tag(reply(attacker, attacker, "198.18.0.2"), etherTypeVLAN, 5), etherTypeQinQ, 6)) // two tags
	at(ms(3), tag(reply(attacker, attacker, "198.18.0.2"), etherTypeVLAN, 7))                        // another VLAN

	// The recycled peer .3: its cached MAC is silent, o3 owns it now.
	request(replayDeadMAC, "198.18.0.3")
	at(ms(1), reply(attacker, zero, "198.18.0.3"))
	request(bcast, "198.18.0.3")
	at(ms(2), padded(reply(o3, o3, "198.18.0.3")))
	at(ms(3), reply(attacker, attacker, "198.18.0.200")) // for an address nobody asked about

	// The dead peer .9, asked twice by unicast and broadcast: only junk
	// claims it, and a real MAC answers after the run.
	for attempt := range 2 {
		if attempt == 1 {
			now = now.Add(ms(100))
		}
		for _, dst := range []net.HardwareAddr{replayDeadMAC, bcast} {
			request(dst, "198.18.0.9")
			at(ms(1), reply(attacker, bcast, "198.18.0.9"))
			at(ms(1), withField(reply(attacker, attacker, "198.18.0.9"), 14, 0, 6))
			at(ms(1), withField(reply(attacker, attacker, "198.18.0.9"), 20, 0, 3))
			at(ms(1), reply(attacker, attacker, "198.18.0.9")[:41])
		}
	}
	// Late: three windows after the last request, when the check has
	// ended, so a replay never delivers it; a late reply that reaches a
	// check still running is TestLateRepliesDecideNothing's and
	// TestLANLateReply's.
	at(ms(300), reply(replayDeadMAC, replayDeadMAC, "198.18.0.9"))
	slices.SortStableFunc(out, func(a, b pcapRecord) int { return a.t.Compare(b.t) })
	return out
}

// craftVLAN returns the frames of vlan.pcap: a check of 198.18.7.2 on
// lan0.7 (VLAN 7 on lan0, the same MAC) as a capture on lan0 shows it,
// every frame tagged. Besides the owner's replies come replies for the
// same address from VLAN 8 and from an 802.1ad S-tag with ID 7, which no
// 802.1Q device of VLAN 7 receives.
func craftVLAN() []pcapRecord {
	var (
		us    = replayProberMAC
		owner = replayHostMAC(1)
		other = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x08}
		bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		zero  = net.HardwareAddr{0, 0, 0, 0, 0, 0}
		t0    = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		ms    = func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
		v7    = func(b []byte) []byte { return tag(b, etherTypeVLAN, 7) }
		reply = func(sha net.HardwareAddr) []byte {
			return craftARP(us, sha, 1, 0x0800, 6, 4, opReply, sha, "198.18.7.2", us, "198.18.7.1")
		}
	)
	return []pcapRecord{
		{ms(0), v7(craftARP(owner, us, 1, 0x0800, 6, 4, opRequest, us, "198.18.7.1", owner, "198.18.7.2"))},
		{ms(0), v7(craftARP(bcast, us, 1, 0x0800, 6, 4, opRequest, us, "198.18.7.1", zero, "198.18.7.2"))},
		{ms(1), v7(reply(owner))},
		{ms(1), tag(reply(owner), etherTypeVLAN, 0xa007)}, // priority 5, VLAN 7: the same LAN
		{ms(2), tag(reply(other), etherTypeVLAN, 8)},
		{ms(3), tag(reply(other), etherTypeQinQ, 7)},
	}
}
