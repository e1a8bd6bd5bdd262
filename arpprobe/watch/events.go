package watch

import (
	"bytes"
	"context"
	"errors"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// NeighborEvent is one change of the kernel's IPv4 neighbour table.
type NeighborEvent struct {
	// Neighbor is the entry after the change (before it, when deleted).
	// Its Interface may be empty.
	Neighbor arpprobe.Neighbor
	Deleted  bool
	// Err, set only on the last event of a subscription that ended
	// before its ctx, says why: it wraps ErrEventsLost when the kernel
	// dropped events because they were not read fast enough.
	Err error
}

// ErrEventsLost is wrapped by NeighborEvent.Err when the kernel dropped
// neighbour events (ENOBUFS): the table must be read again.
var ErrEventsLost = errors.New("neighbour events lost")

// NeighborEventSource reports changes of the kernel's neighbour table as
// they happen. NeighborMonitor is the real one; tests use fakes.
type NeighborEventSource interface {
	// SubscribeNeighbors subscribes and returns once events flow: a change
	// made after it returns is reported. Events arrive on the channel
	// until ctx is done, when the channel is closed, or until the
	// subscription fails, when its last event carries Err and the channel
	// is closed.
	SubscribeNeighbors(ctx context.Context) (<-chan NeighborEvent, error)
}

// eventCause says whether an entry that changed from old (nil: none) to
// cur calls for a check, and why. Entries without a usable MAC
// (INCOMPLETE, FAILED) are the kernel's to resolve; NOARP entries are
// not ARP's. Entering STALE calls for none: the entry is idle, and the
// owner's reply to a check would make the kernel mark it REACHABLE,
// hiding its next use for up to 45 s (see Watcher); its first use
// enters DELAY.
func eventCause(old, cur *arpprobe.Neighbor) (Cause, bool) {
	switch {
	case cur == nil || !cur.Usable() || cur.State&arpprobe.StateNoARP != 0:
		return "", false
	case !old.Usable():
		return CauseNew, true
	case !bytes.Equal(old.MAC, cur.MAC):
		return CauseMAC, true
	case cur.State&(arpprobe.StateDelay|arpprobe.StateProbe) != 0 && cur.State != old.State:
		return CauseState, true
	}
	return "", false
}
