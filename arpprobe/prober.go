package arpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// TapEvent is one frame the prober received or sent, for captures and
// passive listeners. Frame and Parsed are only valid during the call.
type TapEvent struct {
	Ifindex int
	Time    time.Time
	Sent    bool   // true for a frame the prober sent
	Frame   []byte // the whole Ethernet frame
	Parsed  *Frame // nil for sent frames
	Drop    DropReason
}

// Tap receives every frame a Prober sends and receives. It is called on
// the prober's reader and sender goroutines and must be quick and safe for
// concurrent use.
type Tap func(TapEvent)

// ProberConfig configures a Prober. The zero value is ready to use.
type ProberConfig struct {
	// Listen opens the socket of an interface; nil means ListenARP.
	Listen Listener
	// Tap, if set, sees every frame sent and received.
	Tap Tap
	// InterfaceByIndex finds an interface's name and MAC; nil means
	// net.InterfaceByIndex. Tests and programs that build their own
	// interfaces set it.
	InterfaceByIndex func(index int) (*net.Interface, error)
	// Rate and BroadcastRate, if set, bound what all the Prober's runs
	// send together, on top of each run's ProbeOptions.Rate and
	// BroadcastRate: frames per second (bursts of Rate/100) and broadcast
	// requests per second (bursts of BroadcastRate/4). Runs at once and
	// runs one after another share them, so that many small runs (a
	// Watcher's checks during an ARP storm) never send more broadcasts
	// than BroadcastRate allows over any stretch of time. Zero: no bound
	// beyond each run's own.
	Rate, BroadcastRate int
}

// A Prober sends ARP requests and collects the replies. It keeps one
// socket and one reader goroutine per interface it has used, so it is
// cheap to reuse across runs, and several runs may share it at once.
//
// Sockets are opened by Probe in the calling goroutine, so they belong
// to that goroutine's network namespace.
type Prober struct {
	cfg ProberConfig

	// total and bcast are the limiters of cfg.Rate and
	// cfg.BroadcastRate shared by every run; nil when not set.
	total, bcast *rate.Limiter

	mu     sync.Mutex
	links  map[int]*link
	closed bool
}

// NewProber returns a Prober; it opens nothing until the first Probe.
func NewProber(cfg ProberConfig) *Prober {
	if cfg.Listen == nil {
		cfg.Listen = ListenARP
	}
	if cfg.InterfaceByIndex == nil {
		cfg.InterfaceByIndex = net.InterfaceByIndex
	}
	p := &Prober{cfg: cfg, links: make(map[int]*link)}
	if cfg.Rate > 0 {
		p.total = rate.NewLimiter(rate.Limit(cfg.Rate), max(2, cfg.Rate/100))
	}
	if cfg.BroadcastRate > 0 {
		p.bcast = rate.NewLimiter(rate.Limit(cfg.BroadcastRate), max(1, cfg.BroadcastRate/4))
	}
	return p
}

// withTap returns a new Prober with p's configuration and tap called
// after p's own Tap: for one check that records its frames.
func (p *Prober) withTap(tap func(TapEvent)) *Prober {
	cfg := p.cfg
	if own := cfg.Tap; own != nil {
		cfg.Tap = func(e TapEvent) { own(e); tap(e) }
	} else {
		cfg.Tap = tap
	}
	return NewProber(cfg)
}

// ErrClosed is returned by Probe after Close.
var ErrClosed = errors.New("arpprobe: prober closed")

// Close closes every socket and waits for the readers to return.
func (p *Prober) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.links
	p.links = nil
	p.mu.Unlock()
	var errs []error
	for _, l := range links {
		errs = append(errs, l.conn.Close())
		<-l.done
	}
	return errors.Join(errs...)
}

// Listen opens the socket of the interface with index ifindex, unless it
// is open already (a socket whose reader failed, because the interface
// went away or down, is opened afresh), so that the Tap sees the frames
// arriving there before any probe is sent. A Watcher listens this way
// for other hosts' ARP on every interface it watches.
func (p *Prober) Listen(ifindex int) error {
	_, err := p.link(ifindex)
	return err
}

// Stats returns the receive counters (Received and Dropped) of the
// Prober's open sockets, added up since each opened; the other fields
// are zero. It is safe to call at any time.
func (p *Prober) Stats() (s Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		c := l.counters()
		s.Received += c.Received
		for i := range s.Dropped {
			s.Dropped[i] += c.Dropped[i]
		}
	}
	return s
}

// link returns the interface's socket, opening it on first use.
func (p *Prober) link(ifindex int) (*link, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if l := p.links[ifindex]; l != nil {
		if l.failed() == nil {
			return l, nil
		}
		// The reader failed (interface gone or down): start afresh.
		l.conn.Close()
		<-l.done
		delete(p.links, ifindex)
	}
	ifi, err := p.cfg.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("arpprobe: interface %d: %w", ifindex, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("arpprobe: interface %s: not an Ethernet interface", ifi.Name)
	}
	conn, err := p.cfg.Listen(ifi)
	if err != nil {
		return nil, err
	}
	tmpl, err := requestTemplate(ifi.HardwareAddr, netip.IPv4Unspecified())
	if err != nil {
		conn.Close()
		return nil, err
	}
	l := &link{
		template: tmpl,
		ifindex:  ifindex,
		name:     ifi.Name,
		mac:      [6]byte(ifi.HardwareAddr),
		conn:     conn,
		tap:      p.cfg.Tap,
		pending:  make(map[uint32]*peerProbe),
		done:     make(chan struct{}),
	}
	l.stats, _ = conn.(FrameConnStats)
	l.arrivals, _ = conn.(batchReader)
	go l.readLoop()
	p.links[ifindex] = l
	return l, nil
}

// Probe asks each peer's address by unicast to its cached MAC and, by
// opts.Broadcast, by broadcast; it records in each Peer.Replies every MAC
// that answered. It sends frames and needs CAP_NET_RAW.
//
// Peers whose Verdict is already set (offlink) are skipped. A peer that
// could not be finished (ctx done, a send error, the interface gone) gets
// VerdictUnknown and a Reason; the others are left for Classify. Probe
// returns an error only when nothing could be probed, such as a socket
// that cannot be opened for lack of privilege.
//
// Cost: about one frame per attempt per request; every silent peer costs
// opts.Attempts windows of opts.Timeout, all of them running at once, so
// a run lasts about sending time plus Attempts × Timeout at worst.
func (p *Prober) Probe(ctx context.Context, peers []Peer, opts ProbeOptions) (Stats, error) {
	opts, err := opts.WithDefaults()
	if err != nil {
		return Stats{}, err
	}
	r := newRun(opts, len(peers))
	r.sharedTotal, r.sharedBcast = p.total, p.bcast
	// Open sockets and register every probe before anything is sent.
	for i := range peers {
		pr := &peers[i]
		if pr.Verdict != "" {
			continue
		}
		on := pr.Ifindex
		if pr.Via != 0 {
			on = pr.Via
		}
		l, err := p.link(on)
		if err != nil {
			if isPermission(err) || errors.Is(err, ErrClosed) {
				r.unregisterAll()
				return Stats{}, err
			}
			pr.Verdict, pr.Reason = VerdictUnknown, err.Error()
			continue
		}
		pp := r.add(pr, l)
		if err := l.register(pp); err != nil {
			r.giveUp(pp, err.Error())
		}
	}
	before := r.linkCounters()
	r.loop(ctx)
	r.unregisterAll()
	st := r.stats
	after := r.linkCounters()
	st.Received = after.Received - before.Received
	st.KernelDrops = after.KernelDrops - before.KernelDrops
	st.RejectsCounted = after.RejectsCounted
	for i := range st.Rejected {
		st.Rejected[i] = after.Rejected[i] - before.Rejected[i]
	}
	for i := range st.Dropped {
		st.Dropped[i] = after.Dropped[i] - before.Dropped[i]
	}
	return st, nil
}
