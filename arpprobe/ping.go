package arpprobe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultPingInterval is the time between two requests of Ping, as
// arping's.
const DefaultPingInterval = time.Second

// ErrNotOnLink is returned by Ping for a target outside every directly
// connected subnet when no interface is given: ARP cannot reach it.
var ErrNotOnLink = errors.New("not on a directly connected subnet")

// PingConfig says whom Ping asks, how often and through what. Only
// Target is required; zero fields have the documented defaults.
type PingConfig struct {
	// Target is the IPv4 address to ask for.
	Target netip.Addr
	// Interface is the interface to send on; empty means the one the
	// kernel's route to Target uses, which must be directly connected.
	// With an interface given, any target may be asked on it.
	Interface string
	// Source is the sender address of the requests; the zero Addr means
	// the route's preferred source, or else the interface's first IPv4
	// address, or else 0.0.0.0. Set it to 0.0.0.0 (netip.IPv4Unspecified)
	// to send RFC 5227 probes, which no host caches.
	Source netip.Addr
	// MAC, if set, receives unicast requests (has the host with this MAC
	// still got the address?); nil sends broadcast requests (who has it?).
	// Only replies from MAC count as answers then; others are reported.
	MAC net.HardwareAddr
	// Count is how many requests to send; 0 means until ctx is done.
	Count int
	// Interval is the time between requests; zero means
	// DefaultPingInterval.
	Interval time.Duration
	// Timeout is how long to wait for replies after the last request;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// Settle is how long Ping keeps listening for further owners once
	// the last request is answered, before it returns early; zero means
	// Timeout/4. It never exceeds Timeout.
	Settle time.Duration
	// Topology supplies the links and routes that choose the interface
	// and source; nil means the kernel's, opened for the call.
	Topology Topology
	// Listen opens the socket; nil means ListenARP.
	Listen Listener
	// OnSend, if set, is called after each request is sent.
	OnSend func(PingRequest)
	// OnReply, if set, is called for each reply to the requests.
	OnReply func(PingReply)
}

// PingRequest is one request Ping sent.
type PingRequest struct {
	Seq       int // counting from 1
	Time      time.Time
	Interface string
	Source    netip.Addr
	Target    netip.Addr
	Dst       net.HardwareAddr // nil for a broadcast
}

// PingReply is one ARP reply from the target's address.
type PingReply struct {
	// Seq is the request the reply is counted for: the latest sent
	// before it arrived. ARP has no transaction id.
	Seq  int
	Time time.Time
	IP   netip.Addr
	MAC  net.HardwareAddr
	// RTT is the time from request Seq to the reply.
	RTT time.Duration
	// Unicast is true when the reply was addressed to our MAC rather
	// than broadcast.
	Unicast bool
	// Dup counts the replies to request Seq that came before this one:
	// 0 for the first, more for duplicates (several owners, or one owner
	// answering twice).
	Dup int
	// NewOwner is true for the first reply from a MAC when another MAC
	// has answered before: two hosts claim the address.
	NewOwner bool
	// Counted is false for a reply from a MAC other than PingConfig.MAC
	// when that is set: such a reply does not make the target answered.
	Counted bool
}

// PingOwner is a MAC that answered, with the number of its replies.
type PingOwner struct {
	MAC     net.HardwareAddr
	Replies int
}

// PingStats is what a Ping did and heard.
type PingStats struct {
	Target    netip.Addr
	Interface string
	Source    netip.Addr
	Sent      int // requests sent
	Answered  int // requests with at least one counted reply
	Replies   int // every reply, counted or not, duplicates included
	// Duplicates counts the replies beyond the first to a request.
	Duplicates int
	// Owners are the MACs that answered, in order of their first reply.
	Owners []PingOwner
	// RTTMin, RTTAvg and RTTMax are over the counted replies; zero
	// without any.
	RTTMin, RTTAvg, RTTMax time.Duration
	rttSum                 time.Duration
	rttN                   int
}

// Loss returns the share of requests not answered, from 0 to 1; 0 when
// nothing was sent.
func (s *PingStats) Loss() float64 {
	if s.Sent == 0 {
		return 0
	}
	return float64(s.Sent-s.Answered) / float64(s.Sent)
}

// Ping asks for cfg.Target Count times, Interval apart, arping-style:
// every reply from the target's address is passed to cfg.OnReply as it
// comes, and the statistics are returned at the end. It sends frames and
// needs CAP_NET_RAW (errors.Is(err, os.ErrPermission) without it).
//
// Ping returns after the last request has been answered (plus Settle,
// for further owners) or its Timeout has passed, or when ctx
// is done, which is not an error: an interrupted ping returns what it
// heard. Errors are for what kept it from asking: an unknown interface
// (ErrUnknownInterface), a target not on a connected subnet
// (ErrNotOnLink), a socket that cannot be opened, a failed send. The
// statistics are returned in every case.
//
// Cost: Count frames, one every Interval; the socket is opened in the
// calling goroutine's network namespace.
func Ping(ctx context.Context, cfg PingConfig) (PingStats, error) {
	st := PingStats{Target: cfg.Target}
	if !cfg.Target.Is4() {
		return st, fmt.Errorf("arpprobe: probe %s: %w: not an IPv4 address", cfg.Target, ErrBadPeer)
	}
	if cfg.Count < 0 || cfg.Interval < 0 || cfg.Timeout < 0 || cfg.Settle < 0 {
		return st, fmt.Errorf("arpprobe: probe: %w: negative count, interval, timeout or settle", errOptions)
	}
	if cfg.MAC != nil && (len(cfg.MAC) != 6 || !unicastMAC([6]byte(cfg.MAC))) {
		return st, fmt.Errorf("arpprobe: probe: %w: %s is not a unicast Ethernet address", errOptions, cfg.MAC)
	}
	if cfg.Source.IsValid() && !cfg.Source.Is4() {
		return st, fmt.Errorf("arpprobe: probe: %w: source %s is not IPv4", errOptions, cfg.Source)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultPingInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Settle == 0 {
		cfg.Settle = cfg.Timeout / 4
	}
	cfg.Settle = min(cfg.Settle, cfg.Timeout)
	if cfg.Listen == nil {
		cfg.Listen = ListenARP
	}
	if cfg.Topology == nil {
		k, err := OpenKernel()
		if err != nil {
			return st, err
		}
		defer k.Close()
		cfg.Topology = k
	}
	link, src, err := pingRoute(ctx, cfg)
	if err != nil {
		return st, err
	}
	st.Interface, st.Source = link.Name, src
	ifi := &net.Interface{Index: link.Index, Name: link.Name, HardwareAddr: link.MAC}
	conn, err := cfg.Listen(ifi)
	if err != nil {
		return st, fmt.Errorf("arpprobe: probe %s: %w", cfg.Target, err)
	}
	p := &pinger{cfg: cfg, conn: conn, st: &st, mac: [6]byte(link.MAC),
		frames: make(chan pingFrame, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go p.read()
	defer func() {
		close(p.quit)
		conn.Close()
		<-p.done
	}()
	return st, p.loop(ctx)
}

// pingRoute chooses the interface and sender address for cfg.
func pingRoute(ctx context.Context, cfg PingConfig) (Link, netip.Addr, error) {
	links, err := cfg.Topology.Links(ctx)
	if err != nil {
		return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: probe: links: %w", err)
	}
	routes, err := cfg.Topology.Routes(ctx)
	if err != nil {
		return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: probe: routes: %w", err)
	}
	var link *Link
	if cfg.Interface != "" {
		for i := range links {
			if links[i].Name == cfg.Interface {
				link = &links[i]
			}
		}
		if link == nil {
			return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: interface %q: %w", cfg.Interface, ErrUnknownInterface)
		}
	}
	ps, err := Resolve([]netip.Addr{cfg.Target}, links, routes, cfg.Interface)
	if err != nil {
		return Link{}, netip.Addr{}, err
	}
	var src netip.Addr
	onLink := len(ps) == 1 && ps[0].Verdict != VerdictOfflink && ps[0].Ifindex != 0
	switch {
	case onLink && link == nil:
		for i := range links {
			if links[i].Index == ps[0].Ifindex {
				link = &links[i]
			}
		}
		if link == nil {
			return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: probe %s: route to interface %d: %w", cfg.Target, ps[0].Ifindex, ErrUnknownInterface)
		}
		src = ps[0].Source
	case onLink:
		src = ps[0].Source
	case link == nil:
		return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: probe %s: %w: %s%s", cfg.Target, ErrNotOnLink, ps[0].Reason, askAnyway(links))
	default:
		src = source(netip.Addr{}, link, cfg.Target)
	}
	if cfg.Source.IsValid() {
		src = cfg.Source
	}
	if len(link.MAC) != 6 || link.Loopback || link.NoARP {
		return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: probe on %s: not an Ethernet interface that uses ARP", link.Name)
	}
	if !link.Up {
		return Link{}, netip.Addr{}, fmt.Errorf("arpprobe: probe on %s: interface is down", link.Name)
	}
	return *link, src, nil
}

// pingFrame is a reply from the target, or the reader's error.
type pingFrame struct {
	f    Frame
	time time.Time
	err  error
}

type pinger struct {
	cfg    PingConfig
	conn   FrameConn
	mac    [6]byte
	st     *PingStats
	frames chan pingFrame
	quit   chan struct{} // closed when loop has returned
	done   chan struct{} // closed when read returns

	seq  int
	sent [pingHistory]pingSent // request i at i%pingHistory, the latest ones
}

// pingHistory is how many of the latest requests a pinger remembers, to
// count a reply for the request it answers even when it is taken only
// after later requests went out.
const pingHistory = 8

// request returns what the pinger keeps of request seq.
func (p *pinger) request(seq int) *pingSent { return &p.sent[seq%pingHistory] }

// pingSent is what a pinger keeps of a request it sent.
type pingSent struct {
	time     time.Time
	dups     int  // replies to it so far
	answered bool // it has a counted reply
}

// read passes the replies from the target to loop until the conn fails
// or loop returns. Each reply carries the time it arrived: the kernel's,
// when the conn hands frames over in batches (batchReader), so that a
// reply that waited in the receive ring does not lengthen its RTT.
func (p *pinger) read() {
	defer close(p.done)
	src := p.st.Source
	var f Frame
	quit := false
	handle := func(b []byte, at time.Time) {
		if quit || parseFrame(b, &f) != DropNone || f.VLAN != 0 || f.Op != opReply ||
			f.SenderIP != p.cfg.Target || f.TargetIP != src {
			return
		}
		select {
		case p.frames <- pingFrame{f: f, time: at}:
		case <-p.quit:
			quit = true
		}
	}
	var err error
	if br, ok := p.conn.(batchReader); ok {
		for !quit && (err == nil || isTimeout(err)) {
			err = br.ReadBatch(handle)
		}
	} else {
		buf := make([]byte, maxFrameBuffer)
		for !quit && (err == nil || isTimeout(err)) {
			var n int
			if n, err = p.conn.ReadFrame(buf); err == nil {
				handle(buf[:n], time.Now())
			}
		}
	}
	if quit {
		return
	}
	select {
	case p.frames <- pingFrame{err: err}:
	case <-p.quit:
	}
}

func (p *pinger) loop(ctx context.Context) error {
	tmpl, err := requestTemplate(net.HardwareAddr(p.mac[:]), p.st.Source)
	if err != nil {
		return err
	}
	setRequestSender(tmpl, p.st.Source)
	setRequestTarget(tmpl, p.cfg.MAC, p.cfg.Target)

	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextSend, end time.Time // end: zero until the last request is sent
	for {
		now := time.Now()
		if end.IsZero() && !now.Before(nextSend) {
			// The reader may time a reply before WriteFrame returns.
			now = time.Now()
			if err := p.conn.WriteFrame(tmpl); err != nil {
				return fmt.Errorf("arpprobe: probe %s: %w", p.cfg.Target, err)
			}
			p.seq++
			p.st.Sent++
			*p.request(p.seq) = pingSent{time: now}
			if p.cfg.OnSend != nil {
				p.cfg.OnSend(PingRequest{Seq: p.seq, Time: now, Interface: p.st.Interface,
					Source: p.st.Source, Target: p.cfg.Target, Dst: p.cfg.MAC})
			}
			nextSend = now.Add(p.cfg.Interval)
			if p.cfg.Count > 0 && p.seq >= p.cfg.Count {
				end = now.Add(p.cfg.Timeout)
			}
		}
		if !end.IsZero() && !now.Before(end) {
			return nil
		}
		wake := nextSend
		if !end.IsZero() {
			wake = end
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case fr := <-p.frames:
			if fr.err != nil {
				return fmt.Errorf("arpprobe: probe %s: %w", p.cfg.Target, fr.err)
			}
			p.reply(fr.f, fr.time)
			if !end.IsZero() && p.request(p.seq).answered {
				end = earliest(end, fr.time.Add(p.cfg.Settle))
			}
		}
	}
}

// reply records one reply, received at now, and reports it. It answers
// the latest request sent before now: the reader stamps a reply as it
// reads it, and the loop may send more requests before it takes it.
func (p *pinger) reply(f Frame, now time.Time) {
	st := p.st
	seq := p.seq
	for seq > 1 && seq > p.seq-pingHistory+1 && now.Before(p.request(seq).time) {
		seq--
	}
	req := p.request(seq)
	r := PingReply{Seq: seq, Time: now, IP: f.SenderIP, RTT: now.Sub(req.time),
		Unicast: f.EtherDst == p.mac, Dup: req.dups,
		Counted: p.cfg.MAC == nil || bytes.Equal(p.cfg.MAC, f.SenderMAC[:])}
	req.dups++
	st.Replies++
	if r.Dup > 0 {
		st.Duplicates++
	}
	known := false
	for i := range st.Owners {
		if [6]byte(st.Owners[i].MAC) == f.SenderMAC {
			st.Owners[i].Replies++
			r.MAC = st.Owners[i].MAC
			known = true
			break
		}
	}
	if !known {
		r.MAC = net.HardwareAddr(append([]byte(nil), f.SenderMAC[:]...))
		r.NewOwner = len(st.Owners) > 0
		st.Owners = append(st.Owners, PingOwner{MAC: r.MAC, Replies: 1})
	}
	if r.Counted {
		if !req.answered {
			req.answered = true
			st.Answered++
		}
		if st.rttN == 0 || r.RTT < st.RTTMin {
			st.RTTMin = r.RTT
		}
		st.RTTMax = max(st.RTTMax, r.RTT)
		st.rttSum += r.RTT
		st.rttN++
		st.RTTAvg = st.rttSum / time.Duration(st.rttN)
	}
	if p.cfg.OnReply != nil {
		p.cfg.OnReply(r)
	}
}

// askAnyway returns the advice for a target not on a directly connected
// subnet: the interfaces that could be asked anyway (up, Ethernet, using
// ARP), or "" when there is none, so that no advice names an interface
// that cannot work.
func askAnyway(links []Link) string {
	var names []string
	for _, l := range links {
		if len(l.MAC) == 6 && !l.Loopback && !l.NoARP && l.Up {
			names = append(names, l.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf(" (name an interface that uses ARP to ask on it anyway: %s)", strings.Join(names, ", "))
}
