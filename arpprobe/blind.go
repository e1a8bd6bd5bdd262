package arpprobe

import (
	"fmt"
	"time"
)

// When the kernel drops received frames (the receive ring was full: an
// ARP storm, or a reader held up), a reply may be among them. A silence
// heard while frames were being dropped proves nothing, so the prober
// compares each link's drop count (FrameConnStats, polled when an
// attempt is sent and when its window closes) and treats such an attempt
// as blind:
//
//   - a probe whose verdict would rest on a silence (the cached MAC did not
//     answer, or nobody did) asks again, without using up one of its
//     Attempts, at most Attempts more times (and within the run's
//     context);
//   - a probe that ends with every attempt that could tell blind is
//     VerdictUnknown, with the number of frames dropped as its reason;
//   - a reply that did arrive counts whatever was dropped: an ok whose
//     reply came stays ok.

// outcome is what happens to a probe when the window of its attempt
// closes.
type outcome uint8

const (
	outcomeDone   outcome = iota // answered, or a silence nothing hid: Classify decides
	outcomeRetry                 // silent: the next attempt
	outcomeRedo                  // silent while frames were dropped: the attempt again, not counted
	outcomeHidden                // drops hid every attempt that could tell: unknown
)

// behindPoll is how often the scheduler looks again while a closed
// window waits for the reader to catch up (run.behind).
const behindPoll = 2 * time.Millisecond

// outcome decides what the end of pp's current attempt window means, and
// whether the kernel dropped frames during it (blind); r.mu is held.
func (r *run) outcome(pp *peerProbe) (out outcome, blind bool) {
	blind = pp.link.kdrops.Load() > pp.dropsAtSend
	// Two MACs or more: a conflict, whatever else was lost.
	onSilence := !pp.cachedAnswered && (len(pp.peer.Replies) == 0 || pp.hasCached && len(pp.peer.Replies) == 1)
	switch {
	case !onSilence:
		return outcomeDone, blind
	case blind && pp.redone < pp.maxTries:
		return outcomeRedo, blind
	case len(pp.peer.Replies) == 0 && pp.counted < pp.maxTries:
		return outcomeRetry, blind
	}
	// The last attempt: the silence counts if an attempt that asked the
	// right MACs saw no drops.
	cleanUni := pp.cleanUni || !blind && pp.uniSent
	cleanBcast := pp.cleanBcast || !blind && pp.bcastSent
	switch {
	case len(pp.peer.Replies) > 0: // another MAC answered: stale if the cached one is gone
		if cleanUni {
			return outcomeDone, blind
		}
	case r.opts.Broadcast == BroadcastNever: // dead: the cached MAC is silent
		if cleanUni {
			return outcomeDone, blind
		}
	case cleanBcast: // dead: nobody answered the broadcast
		return outcomeDone, blind
	}
	return outcomeHidden, blind
}

// apply carries out the outcome of pp's attempt window; r.mu is held.
func (r *run) apply(pp *peerProbe, out outcome, blind bool) {
	if blind {
		pp.blindDrops += pp.link.kdrops.Load() - pp.dropsAtSend
	} else {
		pp.cleanUni = pp.cleanUni || pp.uniSent
		pp.cleanBcast = pp.cleanBcast || pp.bcastSent
	}
	switch out {
	case outcomeDone:
		r.finish(pp)
	case outcomeRetry:
		r.sends.push(pp)
	case outcomeRedo:
		pp.redone++
		pp.counted--
		r.sends.push(pp)
	case outcomeHidden:
		pp.peer.Verdict = VerdictUnknown
		pp.peer.Reason = fmt.Sprintf("the kernel dropped %d received frames (receive ring full) during every attempt that could tell: a reply may have been lost",
			pp.blindDrops)
		r.finish(pp)
	}
}

// pollDrops brings every link's drop count up to date.
func (r *run) pollDrops() {
	for _, l := range r.links {
		l.pollDrops()
	}
}
