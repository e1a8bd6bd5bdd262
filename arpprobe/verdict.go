package arpprobe

import "fmt"

// Verdict is what a check concluded about one peer's cache entry. Its
// string form is part of the command line's contract (JSON, exit codes).
type Verdict string

// The verdicts. See Classify for how each is reached.
const (
	// VerdictOK: the cached MAC answered for the address, and no other MAC did.
	VerdictOK Verdict = "ok"
	// VerdictStale: the cached MAC did not answer; exactly one other MAC
	// owns the address now.
	VerdictStale Verdict = "stale"
	// VerdictDead: nobody answered.
	VerdictDead Verdict = "dead"
	// VerdictConflict: two or more MACs answered for the address.
	VerdictConflict Verdict = "conflict"
	// VerdictUncached: there was no usable entry (none, INCOMPLETE,
	// FAILED) and exactly one MAC answered.
	VerdictUncached Verdict = "uncached"
	// VerdictOfflink: the address is not on a directly connected subnet;
	// it was not probed.
	VerdictOfflink Verdict = "offlink"
	// VerdictUnknown: the peer could not be checked (deadline, send error,
	// interface gone); Peer.Reason says why.
	VerdictUnknown Verdict = "unknown"
)

// Verdicts lists every verdict in a stable order, for reports and metrics.
var Verdicts = [...]Verdict{VerdictOK, VerdictStale, VerdictDead, VerdictConflict,
	VerdictUncached, VerdictOfflink, VerdictUnknown}

// Action is what a repair did, or would do, to one peer's cache entry.
type Action string

// The actions.
const (
	// ActionNone: nothing was to be done.
	ActionNone Action = "none"
	// ActionReplaced: the entry was overwritten with the verified owner's MAC.
	ActionReplaced Action = "replaced"
	// ActionHealed: the entry already held the owner's MAC when re-read
	// just before the write (usually the kernel learned it from our probe's
	// reply), so nothing was written.
	ActionHealed Action = "healed"
	// ActionDeleted: the entry of a dead peer was deleted.
	ActionDeleted Action = "deleted"
	// ActionWouldReplace: a dry run would have replaced the entry.
	ActionWouldReplace Action = "would-replace"
	// ActionWouldDelete: a dry run would have deleted the entry.
	ActionWouldDelete Action = "would-delete"
	// ActionRefused: the entry is wrong but was deliberately left alone
	// (a conflict, a PERMANENT entry without IncludePermanent, an entry
	// that changed since the snapshot); Peer.Reason says which.
	ActionRefused Action = "refused"
)

// BroadcastPolicy decides which peers get a broadcast request besides the
// unicast request to their cached MAC.
type BroadcastPolicy string

// The broadcast policies.
const (
	// BroadcastAuto sends a broadcast request only to peers whose cached
	// MAC did not answer, or that have no cached MAC. A healthy table costs
	// no broadcast. This is the default.
	BroadcastAuto BroadcastPolicy = "auto"
	// BroadcastAlways also sends every peer a broadcast request, which
	// finds conflicts (two owners of one address).
	BroadcastAlways BroadcastPolicy = "always"
	// BroadcastNever sends unicast requests only; the broadcast domain is
	// never touched, so the verdicts are ok or dead (and uncached peers
	// are dead, having nobody to ask).
	BroadcastNever BroadcastPolicy = "never"
)

// ParseBroadcastPolicy returns the policy named s ("" means auto).
func ParseBroadcastPolicy(s string) (BroadcastPolicy, error) {
	switch p := BroadcastPolicy(s); p {
	case "":
		return BroadcastAuto, nil
	case BroadcastAuto, BroadcastAlways, BroadcastNever:
		return p, nil
	}
	return "", fmt.Errorf("arpprobe: unknown broadcast policy %q (want auto, always or never)", s)
}
