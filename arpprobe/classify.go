package arpprobe

import (
	"bytes"
	"net"
)

// Classify decides the verdict for a peer from the entry the kernel held
// before anything was sent (cached, nil when none) and the distinct MACs
// that answered (replies). It returns the owner: the one MAC that answered,
// or nil when none or several did. Classify is pure; offlink and unknown
// are decided before and around probing, never here.
//
//	usable entry?  MACs answered         verdict
//	any            two or more           conflict
//	any            none                  dead
//	yes            only the cached one   ok
//	yes            only another one      stale
//	no             exactly one           uncached
//
// An entry is usable when it holds a MAC and is not INCOMPLETE or FAILED
// (Neighbor.Usable).
func Classify(cached *Neighbor, replies []Reply) (Verdict, net.HardwareAddr) {
	switch len(replies) {
	case 0:
		return VerdictDead, nil
	case 1:
	default:
		return VerdictConflict, nil
	}
	owner := replies[0].MAC
	switch {
	case !cached.Usable():
		return VerdictUncached, owner
	case bytes.Equal(cached.MAC, owner):
		return VerdictOK, owner
	default:
		return VerdictStale, owner
	}
}
