package arpprobe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// proberMAC is the MAC of oneLAN's interface fake2.
var proberMAC = net.HardwareAddr{2, 0, 0, 0, 0xff, 2}

// pingLAN returns a Ping configuration on oneLAN's interface, with a
// fakeLAN holding hosts for peerIP with the given MACs. Ping returns as
// soon as its last request is answered (Settle 1 ms), or after an hour
// otherwise: tests that expect silence set a short Timeout.
func pingLAN(macs ...net.HardwareAddr) (*fakeLAN, PingConfig) {
	lan := &fakeLAN{}
	for _, m := range macs {
		lan.add(peerIP, m, 0)
	}
	cfg := PingConfig{
		Target:   netip.MustParseAddr(peerIP),
		Count:    3,
		Interval: 50 * time.Millisecond, // ARP has no transaction id: a reply later than this counts for the next request
		Timeout:  time.Hour,
		Settle:   time.Millisecond,
		Topology: oneLAN(),
		Listen:   lan.config().Listen,
	}
	return lan, cfg
}

// pingRecorder collects what Ping reports through its callbacks.
type pingRecorder struct {
	mu      sync.Mutex
	sent    []PingRequest
	replies []PingReply
}

func (r *pingRecorder) hook(cfg *PingConfig) {
	cfg.OnSend = func(q PingRequest) { r.mu.Lock(); r.sent = append(r.sent, q); r.mu.Unlock() }
	cfg.OnReply = func(p PingReply) { r.mu.Lock(); r.replies = append(r.replies, p); r.mu.Unlock() }
}

func TestPingBroadcast(t *testing.T) {
	lan, cfg := pingLAN(macA)
	var rec pingRecorder
	rec.hook(&cfg)
	st, err := Ping(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	want := PingStats{Target: cfg.Target, Interface: "fake2", Source: netip.MustParseAddr("198.18.0.1"),
		Sent: 3, Answered: 3, Replies: 3, Owners: []PingOwner{{MAC: macA, Replies: 3}}}
	if got := st; got.Target != want.Target || got.Interface != want.Interface || got.Source != want.Source ||
		got.Sent != want.Sent || got.Answered != want.Answered || got.Replies != want.Replies ||
		got.Duplicates != 0 || !reflect.DeepEqual(got.Owners, want.Owners) {
		t.Errorf("stats = %+v\nwant %+v", got, want)
	}
	if st.Loss() != 0 || st.RTTMin < 0 || st.RTTMin > st.RTTAvg || st.RTTAvg > st.RTTMax || st.RTTMax <= 0 {
		t.Errorf("loss %v, rtt min/avg/max %v/%v/%v; want 0 and 0 <= min <= avg <= max, max > 0", st.Loss(), st.RTTMin, st.RTTAvg, st.RTTMax)
	}
	if n := lan.count(isBroadcast); n != 3 || len(lan.sent) != 3 {
		t.Errorf("sent %d frames, %d broadcast; want 3 broadcast", len(lan.sent), n)
	}
	for i, f := range lan.sent {
		if f.Op != opRequest || f.SenderIP != st.Source || f.TargetIP != cfg.Target ||
			f.SenderMAC != [6]byte(proberMAC) || f.TargetMAC != [6]byte{} {
			t.Errorf("frame %d = %+v; want a broadcast request for %s from %s %s", i, f, cfg.Target, proberMAC, st.Source)
		}
	}
	for i, r := range rec.replies {
		if r.Seq != i+1 || !bytesEqual(r.MAC, macA) || r.IP != cfg.Target || !r.Unicast || r.Dup != 0 ||
			r.NewOwner || !r.Counted || r.RTT < 0 {
			t.Errorf("reply %d = %+v; want seq %d from %s, unicast, counted, first", i, r, i+1, macA)
		}
	}
	if len(rec.sent) != 3 || rec.sent[0].Seq != 1 || rec.sent[2].Seq != 3 || rec.sent[0].Dst != nil ||
		rec.sent[0].Interface != "fake2" || rec.sent[0].Source != st.Source {
		t.Errorf("OnSend saw %+v; want requests 1 to 3, broadcast, on fake2", rec.sent)
	}
}

func bytesEqual(a, b net.HardwareAddr) bool { return a.String() == b.String() }

func TestPingConflict(t *testing.T) {
	_, cfg := pingLAN(macA, macB)
	cfg.Count = 2
	var rec pingRecorder
	rec.hook(&cfg)
	// Both hosts answer each request: wait for the second one.
	cfg.Settle = time.Hour
	cfg.Timeout = 200 * time.Millisecond
	st, err := Ping(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if st.Sent != 2 || st.Answered != 2 || st.Replies != 4 || st.Duplicates != 2 || len(st.Owners) != 2 {
		t.Fatalf("stats = %+v; want 2 sent, 2 answered, 4 replies, 2 duplicates, 2 owners", st)
	}
	var newOwners, dups int
	for _, r := range rec.replies {
		if r.NewOwner {
			newOwners++
		}
		if r.Dup > 0 {
			dups++
		}
		if r.Dup > 1 {
			t.Errorf("reply %+v: Dup %d; want 0 or 1", r, r.Dup)
		}
	}
	if newOwners != 1 || dups != 2 {
		t.Errorf("replies %+v: %d new owners, %d duplicates; want 1 and 2", rec.replies, newOwners, dups)
	}
}

func TestPingUnicast(t *testing.T) {
	tests := []struct {
		name     string
		hosts    []net.HardwareAddr
		mac      net.HardwareAddr
		inject   net.HardwareAddr // a reply from this MAC to every request
		answered int
		counted  bool
	}{
		{name: "the asked MAC answers", hosts: []net.HardwareAddr{macA, macB}, mac: macA, answered: 3, counted: true},
		{name: "nobody has the asked MAC", hosts: []net.HardwareAddr{macA}, mac: macC},
		{name: "another MAC answers: not counted", hosts: []net.HardwareAddr{macA}, mac: macC, inject: macB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lan, cfg := pingLAN(tt.hosts...)
			cfg.MAC = tt.mac
			if tt.answered == 0 {
				cfg.Timeout = 20 * time.Millisecond
			}
			if tt.inject != nil {
				lan.onSend = func(f Frame) {
					go lan.inject(replyFrame(tt.inject, f.TargetIP, f.SenderMAC[:], f.SenderIP))
				}
			}
			var rec pingRecorder
			rec.hook(&cfg)
			st, err := Ping(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if st.Sent != 3 || st.Answered != tt.answered {
				t.Errorf("sent %d, answered %d; want 3, %d", st.Sent, st.Answered, tt.answered)
			}
			if n := lan.count(func(f Frame) bool { return f.EtherDst == [6]byte(tt.mac) && f.TargetMAC == [6]byte(tt.mac) }); n != 3 {
				t.Errorf("%d requests unicast to %s; want all 3", n, tt.mac)
			}
			for _, r := range rec.replies {
				if r.Counted != tt.counted {
					t.Errorf("reply from %s: counted %v; want %v", r.MAC, r.Counted, tt.counted)
				}
			}
			if tt.inject != nil && len(rec.replies) == 0 {
				t.Errorf("the reply from %s was not reported", tt.inject)
			}
			if tt.answered == 0 && (st.Loss() != 1 || st.RTTMax != 0) {
				t.Errorf("loss %v, rtt max %v; want 1 and 0", st.Loss(), st.RTTMax)
			}
		})
	}
}

// Replies about other addresses, replies to another asker, and requests
// are not replies to the ping.
func TestPingIgnoresOtherFrames(t *testing.T) {
	lan, cfg := pingLAN()
	cfg.Count, cfg.Timeout = 1, 20*time.Millisecond
	other := netip.MustParseAddr("198.18.0.9")
	lan.onSend = func(f Frame) {
		go func() {
			lan.inject(replyFrame(macB, other, f.SenderMAC[:], f.SenderIP))                             // another address
			lan.inject(replyFrame(macB, f.TargetIP, f.SenderMAC[:], netip.MustParseAddr("198.18.0.7"))) // to another asker
			req := replyFrame(macB, f.TargetIP, f.SenderMAC[:], f.SenderIP)
			req[21] = opRequest
			lan.inject(req)                // a request, not a reply
			lan.inject([]byte{1, 2, 3, 4}) // garbage
		}()
	}
	var rec pingRecorder
	rec.hook(&cfg)
	st, err := Ping(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if st.Replies != 0 || len(rec.replies) != 0 || st.Answered != 0 || st.Sent != 1 {
		t.Errorf("stats %+v, replies %+v; want 1 sent and nothing counted", st, rec.replies)
	}
}

// A probe with sender 0.0.0.0 gets replies addressed to 0.0.0.0.
func TestPingProbeSource(t *testing.T) {
	lan, cfg := pingLAN(macA)
	cfg.Count = 1
	cfg.Source = netip.IPv4Unspecified()
	st, err := Ping(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if st.Source != netip.IPv4Unspecified() || st.Answered != 1 || lan.sent[0].SenderIP != netip.IPv4Unspecified() {
		t.Errorf("stats %+v, frame %+v; want source 0.0.0.0 and an answer", st, lan.sent[0])
	}
}

func TestPingUntilCanceled(t *testing.T) {
	_, cfg := pingLAN(macA)
	cfg.Count = 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	replies := 0
	cfg.OnReply = func(r PingReply) {
		if replies++; replies == 5 {
			cancel()
		}
	}
	st, err := Ping(ctx, cfg)
	if err != nil {
		t.Fatalf("Ping: %v; want nil after cancel", err)
	}
	if st.Answered != 5 || st.Sent != 5 {
		t.Errorf("sent %d, answered %d; want 5 and 5", st.Sent, st.Answered)
	}
}

func TestPingRoute(t *testing.T) {
	tests := []struct {
		name   string
		target string
		iface  string
		source string
		src    string // want
		err    error  // want, with errors.Is
	}{
		{name: "the route chooses", target: "198.18.0.2", src: "198.18.0.1"},
		{name: "on the routed interface", target: "198.18.0.2", iface: "fake2", src: "198.18.0.1"},
		{name: "given source", target: "198.18.0.2", source: "198.18.0.77", src: "198.18.0.77"},
		{name: "not on link", target: "198.19.17.9", err: ErrNotOnLink},
		{name: "not on link, asked on an interface anyway", target: "198.19.17.9", iface: "fake2", src: "198.18.0.1"},
		{name: "unknown interface", target: "198.18.0.2", iface: "nope0", err: ErrUnknownInterface},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cfg := pingLAN()
			cfg.Target = netip.MustParseAddr(tt.target)
			cfg.Interface = tt.iface
			if tt.source != "" {
				cfg.Source = netip.MustParseAddr(tt.source)
			}
			cfg.Count, cfg.Timeout = 1, time.Millisecond
			st, err := Ping(context.Background(), cfg)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || st.Sent != 0 {
					t.Errorf("Ping = %+v, %v; want %v and nothing sent", st, err, tt.err)
				}
				return
			}
			if err != nil || st.Interface != "fake2" || st.Source != netip.MustParseAddr(tt.src) || st.Sent != 1 {
				t.Errorf("Ping = %+v, %v; want one request on fake2 from %s", st, err, tt.src)
			}
		})
	}
}

func TestPingErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(lan *fakeLAN, cfg *PingConfig)
		err   string // substring
		not   string // substring the error must not hold
		perm  bool   // errors.Is(err, os.ErrPermission)
	}{
		{name: "route through a NOARP interface", setup: func(_ *fakeLAN, c *PingConfig) {
			tbl := oneLAN()
			tbl.links = append(tbl.links, Link{Index: 3, Name: "tun3", Up: true, NoARP: true,
				Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.49.1/24")}})
			tbl.routes = append(tbl.routes, Route{Dst: netip.MustParsePrefix("198.18.49.0/24"), Ifindex: 3})
			c.Topology, c.Target = tbl, netip.MustParseAddr("198.18.49.11")
		}, err: "arpprobe: probe 198.18.49.11: not on a directly connected subnet: route 198.18.49.0/24 is through tun3, which does not use ARP (name an interface that uses ARP to ask on it anyway: fake2)",
			not: "tun3)"},
		{name: "NOARP route, no interface that uses ARP", setup: func(_ *fakeLAN, c *PingConfig) {
			c.Topology = &fakeTable{
				links: []Link{{Index: 3, Name: "tun3", Up: true, NoARP: true,
					Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.49.1/24")}}},
				routes: []Route{{Dst: netip.MustParsePrefix("198.18.49.0/24"), Ifindex: 3}},
			}
			c.Target = netip.MustParseAddr("198.18.49.11")
		}, err: "which does not use ARP", not: "anyway"},
		{name: "given interface does not use ARP", setup: func(_ *fakeLAN, c *PingConfig) {
			tbl := oneLAN()
			tbl.links[0].NoARP = true
			c.Topology, c.Interface = tbl, "fake2"
		}, err: "arpprobe: probe on fake2: not an Ethernet interface that uses ARP", not: "ping"},
		{name: "IPv6 target", setup: func(_ *fakeLAN, c *PingConfig) { c.Target = netip.MustParseAddr("2001:db8::1") },
			err: "not an IPv4 address"},
		{name: "multicast MAC", setup: func(_ *fakeLAN, c *PingConfig) { c.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} },
			err: "not a unicast Ethernet address"},
		{name: "short MAC", setup: func(_ *fakeLAN, c *PingConfig) { c.MAC = net.HardwareAddr{2, 0, 0} },
			err: "not a unicast Ethernet address"},
		{name: "negative count", setup: func(_ *fakeLAN, c *PingConfig) { c.Count = -1 }, err: "negative"},
		{name: "no privilege", setup: func(_ *fakeLAN, c *PingConfig) {
			c.Listen = func(*net.Interface) (FrameConn, error) { return nil, errEPERM }
		}, err: "permission denied", perm: true},
		{name: "send fails", setup: func(lan *fakeLAN, _ *PingConfig) {
			lan.writeErr = func(int) error { return syscallErr("ENETDOWN") }
		}, err: "network is down"},
		{name: "interface down", setup: func(_ *fakeLAN, c *PingConfig) {
			tbl := oneLAN()
			tbl.links[0].Up = false
			c.Topology = tbl
		}, err: "which is down"},
		{name: "given interface down", setup: func(_ *fakeLAN, c *PingConfig) {
			tbl := oneLAN()
			tbl.links[0].Up = false
			c.Topology, c.Interface = tbl, "fake2"
		}, err: "interface is down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lan, cfg := pingLAN(macA)
			tt.setup(lan, &cfg)
			st, err := Ping(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.err) || errors.Is(err, os.ErrPermission) != tt.perm {
				t.Errorf("Ping = %v; want an error containing %q, permission %v", err, tt.err, tt.perm)
			}
			if err != nil && tt.not != "" && strings.Contains(err.Error(), tt.not) {
				t.Errorf("Ping = %v; want an error without %q", err, tt.not)
			}
			if st.Answered != 0 {
				t.Errorf("answered %d after an error; want 0", st.Answered)
			}
		})
	}
}

// TestPingReplyReadBeforeASend: the reader stamps a reply as it reads
// it, and the loop may send the next request before it takes the reply.
// The reply answers the request sent before it was read, with a
// positive RTT.
func TestPingReplyReadBeforeASend(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var rec pingRecorder
	p := &pinger{st: &PingStats{}}
	rec.hook(&p.cfg)
	p.seq = 3
	*p.request(1) = pingSent{time: t0}
	*p.request(2) = pingSent{time: t0.Add(time.Second)}
	*p.request(3) = pingSent{time: t0.Add(2 * time.Second)}
	reply := Frame{SenderIP: netip.MustParseAddr(peerIP), SenderMAC: [6]byte(macA)}
	p.reply(reply, t0.Add(100*time.Millisecond))  // read before requests 2 and 3 went out
	p.reply(reply, t0.Add(1100*time.Millisecond)) // before request 3
	p.reply(reply, t0.Add(2100*time.Millisecond)) // request 3's own
	if len(rec.replies) != 3 {
		t.Fatalf("%d replies reported; want 3", len(rec.replies))
	}
	for i, want := range []PingReply{{Seq: 1, RTT: 100 * time.Millisecond}, {Seq: 2, RTT: 100 * time.Millisecond},
		{Seq: 3, RTT: 100 * time.Millisecond}} {
		if r := rec.replies[i]; r.Seq != want.Seq || r.RTT != want.RTT || r.Dup != 0 || !r.Counted {
			t.Errorf("reply %d = seq %d, RTT %v, dup %d, counted %v; want seq %d, RTT %v, first, counted",
				i, r.Seq, r.RTT, r.Dup, r.Counted, want.Seq, want.RTT)
		}
	}
	if st := p.st; st.Answered != 3 || st.Duplicates != 0 || st.RTTMin != 100*time.Millisecond || st.RTTMax != 100*time.Millisecond {
		t.Errorf("stats %+v; want 3 answered, no duplicates, RTTs of 100ms", *st)
	}
}
