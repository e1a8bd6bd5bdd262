package arpprobe

import (
	"container/heap"
	"context"
	"errors"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// peerProbe is the state of one peer during one run. Its fields are
// guarded by run.mu, except nextPending.
type peerProbe struct {
	run  *run
	peer *Peer
	link *link
	// nextPending chains the probes waiting for the same address on the
	// link (link.pending); it is guarded by link.mu.
	nextPending *peerProbe
	// frames: a request template with the sender fields filled in.
	cached    [6]byte
	hasCached bool // a usable cached entry: ask its MAC by unicast
	maxTries  int

	attempt        int // sequence number of the attempt sent last
	counted        int // attempts that count against maxTries
	lastSend       time.Time
	uniSent        bool // in the current attempt
	bcastSent      bool // in the current attempt
	bcastAnswered  bool // in the current attempt
	askedUnicast   bool // a unicast request was sent in this run
	askedBroadcast bool // a broadcast request was sent in this run
	firstBcast     time.Time
	cachedAnswered bool
	settling       bool
	sendRetries    int
	done           bool

	// Kernel drops (see blind.go): the link's drop count when the
	// current attempt was sent, the attempts redone because frames were
	// dropped during their window, how many drops those saw, and whether
	// some attempt asked the cached MAC, or everyone, with nothing
	// dropped before its window closed.
	dropsAtSend uint64
	redone      int
	blindDrops  uint64
	cleanUni    bool
	cleanBcast  bool
}

// timed is a queue entry: a probe's event due at a time, for an attempt.
type timed struct {
	pp      *peerProbe
	due     time.Time
	attempt int
}

// fifo is a first-in first-out queue. Entries of one queue are pushed
// with due times in non-decreasing order (now plus a constant), so the
// head is always the earliest.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) push(v T) { q.items = append(q.items, v) }
func (q *fifo[T]) len() int { return len(q.items) - q.head }
func (q *fifo[T]) peek() *T { return &q.items[q.head] }
func (q *fifo[T]) pop() T {
	v := q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return v
}

// slab hands out small objects of type T from blocks allocated size at a
// time, so that a run's per-peer objects (probes, first replies and
// their MACs) cost an allocation per block rather than one each. A slice
// taken stays valid while anything refers to its block.
type slab[T any] struct {
	block []T
	size  int
}

// take returns n zero elements (n <= size) with capacity n, so that an
// append to them copies rather than overwrites a neighbour's.
func (s *slab[T]) take(n int) []T {
	if len(s.block) < n {
		s.block = make([]T, max(s.size, n))
	}
	v := s.block[:n:n]
	s.block = s.block[n:]
	return v
}

// slabSize is the block size of a run's slabs: one block for a small
// run, and few enough allocations for a large one.
const slabSize = 256

// run is one call of Probe.
type run struct {
	opts   ProbeOptions
	mu     sync.Mutex
	wake   chan struct{}
	probes []*peerProbe
	links  map[int]*link

	remaining int
	windows   fifo[timed]      // attempts waiting for their timeout
	quick     fifo[timed]      // BroadcastAuto's first unicast attempts, waiting Timeout/5
	lingers   lingerHeap       // probes listening on until BroadcastWait after their first broadcast
	settles   fifo[timed]      // answered attempts waiting to settle
	retries   fifo[timed]      // attempts to send again after a full buffer
	sends     fifo[*peerProbe] // attempts to send, in order
	// behind is set while a window or settle time has passed but the
	// reader has not yet seen everything that arrived before it did.
	behind bool
	// caughtUp is the link found caught up in this expire, if any
	// (behindOn).
	caughtUp *link

	total, bcast *rate.Limiter
	// sharedTotal and sharedBcast are the Prober's limiters, shared with
	// its other runs (ProberConfig.Rate, BroadcastRate); nil when unset.
	sharedTotal, sharedBcast *rate.Limiter
	stats                    Stats

	// The batch being sent (scheduler only): its attempts, its frames,
	// and the buffers the frames are built in.
	batch     []sendItem
	frames    [][]byte
	frameBufs [][]byte

	pps     slab[peerProbe] // for add
	replies slab[Reply]     // for each peer's first reply (onReply)
	macs    slab[byte]      // for the MACs of replies (onReply)
}

// newRun returns a run for at most n peers.
func newRun(opts ProbeOptions, n int) *run {
	size := min(max(n, 1), slabSize)
	return &run{
		opts:   opts,
		wake:   make(chan struct{}, 1),
		links:  make(map[int]*link),
		probes: make([]*peerProbe, 0, n),
		// Every peer's first attempt is queued to send, then waits for
		// its window: room for all at once spares copying as they grow.
		sends:   fifo[*peerProbe]{items: make([]*peerProbe, 0, n)},
		windows: fifo[timed]{items: make([]timed, 0, n)},
		total:   rate.NewLimiter(rate.Limit(opts.Rate), max(2, opts.Rate/100)),
		bcast:   rate.NewLimiter(rate.Limit(opts.BroadcastRate), max(1, opts.BroadcastRate/4)),
		pps:     slab[peerProbe]{size: size},
		replies: slab[Reply]{size: size},
		macs:    slab[byte]{size: 6 * size},
	}
}

func (r *run) add(pr *Peer, l *link) *peerProbe {
	pp := &r.pps.take(1)[0]
	pp.run, pp.peer, pp.link = r, pr, l
	if pr.Cached.Usable() {
		pp.cached, pp.hasCached = [6]byte(pr.Cached.MAC), true
	}
	switch {
	case r.opts.Broadcast == BroadcastNever && !pp.hasCached:
		pp.maxTries = 0 // nobody to ask: dead without a frame
	case r.opts.Broadcast == BroadcastAuto && pp.hasCached:
		pp.maxTries = max(r.opts.Attempts, 2)
	default:
		pp.maxTries = r.opts.Attempts
	}
	r.probes = append(r.probes, pp)
	r.links[l.ifindex] = l
	r.remaining++
	return pp
}

func (r *run) unregisterAll() {
	for _, pp := range r.probes {
		pp.link.unregister(pp)
	}
}

func (r *run) linkCounters() (s Stats) {
	for _, l := range r.links {
		c := l.counters()
		s.Received += c.Received
		s.KernelDrops += l.pollDrops()
		if rc, ok := l.conn.(rejectCounter); ok {
			if rej, err := rc.kernelRejects(); err == nil {
				s.RejectsCounted = true
				for i := range rej {
					s.Rejected[i] += rej[i]
				}
			}
		}
		for i := range s.Dropped {
			s.Dropped[i] += c.Dropped[i]
		}
	}
	return s
}

func (r *run) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// finish ends a probe; r.mu must be held.
func (r *run) finish(pp *peerProbe) {
	if pp.done {
		return
	}
	pp.done = true
	r.remaining--
	if r.remaining == 0 {
		r.poke()
	}
}

// giveUp ends a probe with verdict unknown.
func (r *run) giveUp(pp *peerProbe, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pp.done {
		return
	}
	pp.peer.Verdict, pp.peer.Reason = VerdictUnknown, reason
	r.finish(pp)
}

// onReply records that mac answered for pp's address, and reports
// whether the reply was one pp waits for: the address was asked in this
// run, and pp's probe has not ended. It runs on the link's reader
// goroutine.
func (r *run) onReply(pp *peerProbe, mac [6]byte, now time.Time) (asked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pp.attempt == 0 {
		return false // not asked yet: a reply to someone else
	}
	if pp.done {
		// Too late: the probe has ended (its windows passed, it settled,
		// or it was given up). Counting the reply now would make the
		// verdict depend on whether other peers of the run are still
		// being probed.
		return false
	}
	isCached := pp.hasCached && mac == pp.cached
	if !isCached && !pp.askedBroadcast {
		// Only the cached MAC has been asked, by unicast: another MAC's
		// reply answers someone else's request (a gratuitous or forged
		// reply, another prober's) and must not decide the verdict
		// before a broadcast asks everyone.
		return false
	}
	asked = true
	r.stats.Replies++
	rs := pp.peer.Replies
	found := false
	for i := range rs {
		if [6]byte(rs[i].MAC) == mac {
			rs[i].Count++
			found = true
			break
		}
	}
	if !found {
		m := r.macs.take(6)
		copy(m, mac[:])
		reply := Reply{
			MAC:     net.HardwareAddr(m),
			Unicast: pp.askedUnicast && isCached,
			RTT:     now.Sub(pp.lastSend),
			Count:   1,
		}
		if rs == nil {
			rs = r.replies.take(1)[:0] // the usual case: one owner
		}
		pp.peer.Replies = append(rs, reply)
	}
	if isCached {
		pp.cachedAnswered = true
	}
	if pp.bcastSent {
		pp.bcastAnswered = true
	}
	if pp.uniSent && !pp.cachedAnswered || pp.bcastSent && !pp.bcastAnswered {
		return // the attempt is not fully answered yet
	}
	if !pp.bcastSent {
		r.finish(pp) // a unicast answer: nobody else was asked
		return
	}
	if !pp.settling {
		pp.settling = true
		r.settles.push(timed{pp: pp, due: now.Add(r.opts.Settle), attempt: pp.attempt})
		r.poke()
	}
	return
}

// loop sends every attempt, paced by the rate limits, and ends each
// probe when it is answered, its windows have passed, or ctx is done.
func (r *run) loop(ctx context.Context) {
	r.mu.Lock()
	for _, pp := range r.probes {
		if pp.done {
			continue
		}
		if pp.maxTries == 0 {
			r.finish(pp)
			continue
		}
		r.sends.push(pp)
	}
	r.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := ctx.Err(); err != nil {
			r.abandon(err)
			return
		}
		r.mu.Lock()
		if r.remaining == 0 {
			r.mu.Unlock()
			return
		}
		now := time.Now()
		r.expire(now)
		next := r.sendDue(ctx, now)
		if r.remaining == 0 {
			r.mu.Unlock()
			return
		}
		if r.windows.len() > 0 {
			next = earliest(next, r.windows.peek().due)
		}
		if r.quick.len() > 0 {
			next = earliest(next, r.quick.peek().due)
		}
		if len(r.lingers) > 0 {
			next = earliest(next, r.lingers[0].due)
		}
		if r.settles.len() > 0 {
			next = earliest(next, r.settles.peek().due)
		}
		if r.retries.len() > 0 {
			next = earliest(next, r.retries.peek().due)
		}
		if r.behind {
			next = earliest(next, now.Add(behindPoll))
		}
		r.mu.Unlock()

		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			r.abandon(ctx.Err())
			return
		case <-r.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// expire handles the windows and settle times that have passed; r.mu held.
// A probe that would end on what did not arrive waits until its link's
// reader has seen every frame that arrived before its time was up
// (link.caughtUp); r.behind says that one is waiting.
func (r *run) expire(now time.Time) {
	for r.retries.len() > 0 && !r.retries.peek().due.After(now) {
		if t := r.retries.pop(); !t.pp.done {
			r.sends.push(t.pp)
		}
	}
	r.behind, r.caughtUp = false, nil
	for r.settles.len() > 0 && !r.settles.peek().due.After(now) {
		t := *r.settles.peek()
		pp := t.pp
		if t.attempt == pp.attempt && !pp.done {
			if r.lingering(pp, now) {
				r.settles.pop()
				r.linger(t)
				continue
			}
			if r.behindOn(pp, t.due, now) {
				r.behind = true
				break
			}
			r.finish(pp)
		}
		r.settles.pop()
	}
	polled := false
	for _, q := range []*fifo[timed]{&r.quick, &r.windows} {
		for q.len() > 0 && !q.peek().due.After(now) {
			t := *q.peek()
			pp := t.pp
			if pp.done || t.attempt != pp.attempt {
				q.pop()
				continue
			}
			if !polled {
				// One look at the kernel's drop counters for every
				// window that closes now.
				r.pollDrops()
				polled = true
			}
			out, blind := r.outcome(pp)
			ending := out == outcomeDone || out == outcomeHidden
			if ending && r.lingering(pp, now) {
				q.pop()
				r.linger(t)
				continue
			}
			if ending && r.behindOn(pp, t.due, now) {
				r.behind = true
				break
			}
			q.pop()
			r.apply(pp, out, blind)
		}
	}
	for len(r.lingers) > 0 && !r.lingers[0].due.After(now) {
		t := r.lingers[0]
		pp := t.pp
		if !pp.done && t.attempt == pp.attempt {
			if r.behindOn(pp, t.due, now) {
				r.behind = true
				break
			}
			if !polled {
				r.pollDrops()
				polled = true
			}
			out, blind := r.outcome(pp)
			heap.Pop(&r.lingers)
			r.apply(pp, out, blind)
			continue
		}
		heap.Pop(&r.lingers)
	}
}

// maxCatchUp bounds how long a probe about to end waits for its link's
// reader to catch up past its due time. A frame the kernel accepted
// reaches the reader within a retire-timer period (a few ms), unless the
// reader is starved of CPU; the bound keeps a run that cannot tell (a
// count that never matches) from waiting for ever.
const maxCatchUp = time.Second

// behindOn reports whether pp, due to end at due, must wait for its
// link's reader to deal with frames that have arrived (link.caughtUp).
// One look per expire serves every probe of a link: a link caught up at
// the start of the sweep has read every frame that arrived before any
// due time the sweep handles.
func (r *run) behindOn(pp *peerProbe, due, now time.Time) bool {
	if now.Sub(due) >= maxCatchUp || r.caughtUp == pp.link {
		return false
	}
	if !pp.link.caughtUp() {
		return true
	}
	r.caughtUp = pp.link
	return false
}

// lingering reports whether pp, about to end, must listen on: less than
// BroadcastWait has passed since its first broadcast request.
func (r *run) lingering(pp *peerProbe, now time.Time) bool {
	return !pp.firstBcast.IsZero() && now.Before(pp.firstBcast.Add(r.opts.BroadcastWait))
}

// linger queues t's probe to be decided BroadcastWait after its first
// broadcast request.
func (r *run) linger(t timed) {
	t.due = t.pp.firstBcast.Add(r.opts.BroadcastWait)
	heap.Push(&r.lingers, t)
}

// lingerHeap is a min-heap of timed entries by due time (container/heap).
type lingerHeap []timed

func (h lingerHeap) Len() int           { return len(h) }
func (h lingerHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h lingerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lingerHeap) Push(x any)        { *h = append(*h, x.(timed)) }
func (h *lingerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timed{}
	*h = old[:len(old)-1]
	return t
}

// sendDue sends the attempts at the head of the queue while the rate
// limits allow, in batches (see sendBatch); it returns when the next one
// may go (zero: none queued), or at once when ctx ends. r.mu is held on
// entry and exit, released around each write.
func (r *run) sendDue(ctx context.Context, now time.Time) time.Time {
	for {
		wait := r.takeDue(now)
		if len(r.batch) > 0 {
			now = r.sendBatch(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return time.Time{} // the loop abandons what is left
		case wait > 0:
			return now.Add(wait)
		case r.sends.len() == 0:
			return time.Time{}
		}
	}
}

// sendItem is an attempt in the batch being sent, and its requests.
type sendItem struct {
	pp      *peerProbe
	uni, bc bool
}

// maxSendBatch is the most frames one batch holds: as many as the
// socket of ListenARP sends with one sendmmsg(2). On a veth, where the
// peer's kernel answers within the sender's system call, the last frame
// of a full batch leaves some 0.5 ms after the first.
const maxSendBatch = 64

// takeDue moves attempts from the head of the queue into r.batch, taking
// their rate tokens and starting them, until the batch is full, the next
// attempt goes out on another link, or the rate limits say to wait: it
// returns how long. r.mu is held.
func (r *run) takeDue(now time.Time) time.Duration {
	r.batch = r.batch[:0]
	frames := 0
	for r.sends.len() > 0 {
		pp := *r.sends.peek()
		if pp.done {
			r.sends.pop()
			continue
		}
		uni := pp.hasCached && !pp.cachedAnswered
		bc := r.opts.Broadcast == BroadcastAlways ||
			r.opts.Broadcast == BroadcastAuto && (!pp.hasCached || pp.counted >= 1)
		n := 0
		if uni {
			n++
		}
		if bc {
			n++
		}
		if frames+n > maxSendBatch || len(r.batch) > 0 && pp.link != r.batch[0].pp.link {
			return 0
		}
		if wait := r.reserve(now, n, bc); wait > 0 {
			return wait
		}
		r.sends.pop()
		pp.attempt++
		pp.counted++
		pp.uniSent, pp.bcastSent, pp.bcastAnswered, pp.settling = uni, bc, false, false
		pp.askedUnicast = pp.askedUnicast || uni
		pp.askedBroadcast = pp.askedBroadcast || bc
		r.batch = append(r.batch, sendItem{pp: pp, uni: uni, bc: bc})
		frames += n
	}
	return 0
}

// sendBatch writes the requests of the attempts in r.batch, all on one
// link, with as few system calls as the link's conn allows, and starts
// the window of each attempt sent; it returns the time after the write.
// r.mu is held on entry and exit, and released during the write so that
// the reader can record replies meanwhile. A write still blocked when ctx
// ends is cut short; its attempts are left for the loop to abandon.
func (r *run) sendBatch(ctx context.Context) time.Time {
	l := r.batch[0].pp.link
	r.frames = r.frames[:0]
	for _, it := range r.batch {
		if it.uni {
			r.frames = append(r.frames, r.request(it.pp, it.pp.cached[:]))
		}
		if it.bc {
			r.frames = append(r.frames, r.request(it.pp, nil))
		}
	}
	start := time.Now()
	drops := l.pollDrops()
	for _, it := range r.batch {
		it.pp.lastSend = start
		it.pp.dropsAtSend = drops
	}
	r.mu.Unlock()
	if l.tap != nil {
		for _, f := range r.frames {
			l.tap(TapEvent{Ifindex: l.ifindex, Time: start, Sent: true, Frame: f})
		}
	}
	sent, err := l.writeFrames(ctx, r.frames)
	r.mu.Lock()
	now := time.Now()
	// A write cut short because the run ended: its peers were not
	// checked, and that is not the send's fault.
	cut := err != nil && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded)
	var failed *peerProbe // the attempt whose frame failed
	for _, it := range r.batch {
		// The frames went out in order: sent counts those of the
		// attempts before this one, then this one's.
		ok := true
		if it.uni {
			if ok = sent > 0; ok {
				sent--
				r.stats.SentUnicast++
			}
		}
		if it.bc && ok {
			if ok = sent > 0; ok {
				sent--
				r.stats.SentBroadcast++
			}
		}
		switch {
		case ok && r.opts.Broadcast == BroadcastAuto && it.pp.hasCached && !it.bc:
			// The cached MAC alone was asked: a live host answers at
			// once; the broadcast follows soon, with time for a proxy.
			r.quick.push(timed{pp: it.pp, due: now.Add(r.opts.Timeout / 5), attempt: it.pp.attempt})
		case ok:
			if it.bc && it.pp.firstBcast.IsZero() {
				it.pp.firstBcast = now
			}
			r.windows.push(timed{pp: it.pp, due: now.Add(r.opts.Timeout), attempt: it.pp.attempt})
		case cut:
		case failed == nil:
			failed = it.pp
		default:
			r.notTried(it.pp, err, now)
		}
	}
	if failed != nil {
		// After the attempts not tried, so that a lasting full buffer
		// costs each attempt in turn a retry, as single writes would.
		r.sendFailed(failed, err, now)
	}
	return now
}

// request returns a request for pp's address from pp's source, unicast to
// dst or broadcast when dst is nil, built in a buffer of the run's own
// that is reused by the next batch.
func (r *run) request(pp *peerProbe, dst []byte) []byte {
	i := len(r.frames)
	if i == len(r.frameBufs) {
		r.frameBufs = append(r.frameBufs, make([]byte, 0, len(pp.link.template)))
	}
	f := append(r.frameBufs[i][:0], pp.link.template...)
	r.frameBufs[i] = f
	setRequestSender(f, pp.peer.Source)
	setRequestTarget(f, dst, pp.peer.IP)
	return f
}

// reserve takes n frame tokens (one of them a broadcast token when bc)
// from the run's limiters and the Prober's shared ones, or takes none
// and returns how long to wait. It allocates nothing: it is called once
// an attempt, and rate.Limiter.ReserveN allocates a Reservation a call.
func (r *run) reserve(now time.Time, n int, bc bool) time.Duration {
	ls := [4]*rate.Limiter{r.total, r.sharedTotal}
	if bc {
		ls[2], ls[3] = r.bcast, r.sharedBcast
	}
	need := func(i int) int {
		if i >= 2 {
			return 1
		}
		return n
	}
	var wait time.Duration
	for i, l := range ls {
		if l != nil {
			wait = max(wait, tokenWait(l, now, need(i)))
		}
	}
	if wait > 0 {
		return wait
	}
	for i, l := range ls {
		if l != nil && !l.AllowN(now, need(i)) {
			// Another run took a shared limiter's tokens since they were
			// counted above; those taken from the limiters before it are
			// spent unsent, which errs on the side of sending less.
			return max(tokenWait(l, now, need(i)), time.Microsecond)
		}
	}
	return 0
}

// tokenWait returns how long from now until l holds k tokens: 0 when it
// does already.
func tokenWait(l *rate.Limiter, now time.Time, k int) time.Duration {
	short := float64(k) - l.TokensAt(now)
	if short <= 0 || l.Limit() == rate.Inf {
		return 0
	}
	if l.Limit() <= 0 || k > l.Burst() {
		return rate.InfDuration
	}
	return time.Duration(math.Ceil(short / float64(l.Limit()) * float64(time.Second)))
}

// transient reports whether a send error may pass: a full socket buffer
// or transmit queue.
func transient(err error) bool {
	return errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN)
}

// notTried handles an attempt of a batch that was not written because an
// earlier frame of the batch failed with err. After a transient error it
// is sent again after a short pause, without using up one of its own
// retries; after another error (the interface is down or gone) its own
// write would fail alike, so it fails now.
func (r *run) notTried(pp *peerProbe, err error, now time.Time) {
	if !transient(err) {
		r.sendFailed(pp, err, now)
		return
	}
	pp.attempt--
	pp.counted--
	r.retries.push(timed{pp: pp, due: now.Add(time.Millisecond), attempt: pp.attempt})
}

// sendFailed retries an attempt after a transient send error (a full
// socket buffer) a few times, and otherwise gives the peer up.
func (r *run) sendFailed(pp *peerProbe, err error, now time.Time) {
	if transient(err) && pp.sendRetries < 3 {
		pp.sendRetries++
		pp.attempt--
		pp.counted--
		// Come back after a short pause; the other sends go on.
		r.retries.push(timed{pp: pp, due: now.Add(time.Millisecond), attempt: pp.attempt})
		return
	}
	pp.peer.Verdict, pp.peer.Reason = VerdictUnknown, "send: "+err.Error()
	r.finish(pp)
}

// abandon ends every unfinished probe as unknown when ctx is done.
func (r *run) abandon(err error) {
	reason := "deadline exceeded before the peer was checked"
	if errors.Is(err, context.Canceled) {
		reason = "canceled before the peer was checked"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pp := range r.probes {
		if !pp.done {
			pp.peer.Verdict, pp.peer.Reason = VerdictUnknown, reason
			r.finish(pp)
		}
	}
}
