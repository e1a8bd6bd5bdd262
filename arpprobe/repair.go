package arpprobe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// RepairPolicy says which wrong entries a repair may change.
type RepairPolicy struct {
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// DeleteDead deletes the entries of dead peers, so the next packet
	// makes the kernel ask by broadcast.
	DeleteDead bool
	// IncludePermanent allows changing PERMANENT (and NOARP) entries;
	// they stay PERMANENT. Without it they are refused.
	IncludePermanent bool
	// IncludeExternLearn allows changing entries that a control plane
	// owns (extern_learn, FlagExternLearned: EVPN daemons, some CNI
	// plugins); they keep the flag. Without it they are refused, so that
	// a repair does not fight the controller that wrote them.
	IncludeExternLearn bool
}

// refusal returns why policy does not let a repair change or delete the
// entry c (verb: "change" or "delete"), or "".
func (policy RepairPolicy) refusal(c *Neighbor, verb string) string {
	switch {
	case c.State.Static() && !policy.IncludePermanent:
		return fmt.Sprintf("%s entry; use --include-permanent to %s it", c.State, verb)
	case c.Flags&FlagExternLearned != 0 && !policy.IncludeExternLearn:
		return fmt.Sprintf("extern_learn entry (a control plane owns it); use --include-extern-learn to %s it", verb)
	}
	return ""
}

// Op is what a planned change does to an entry.
type Op uint8

// The operations of a planned change.
const (
	OpReplace Op = iota + 1 // write the verified owner's MAC
	OpDelete                // delete the entry
)

// Change is one planned write to the neighbour table.
type Change struct {
	Peer int      // index into the peers given to PlanRepairs
	Op   Op       // OpReplace or OpDelete
	Old  Neighbor // the entry as snapshotted before probing
	New  Neighbor // for OpReplace: the entry to write
}

// PlanRepairs decides, from verdicts alone, what a repair would change.
// It returns the planned changes and sets Action (and Reason) on every
// peer it will not change: ActionNone, or ActionRefused for a conflict
// or a static entry without IncludePermanent, or an extern_learn one
// without IncludeExternLearn. It is pure and never plans
// a MAC other than the Owner verified by this run's replies, nor an entry
// for a peer that had none.
func PlanRepairs(peers []Peer, policy RepairPolicy) []Change {
	var plan []Change
	for i := range peers {
		p := &peers[i]
		p.Action = ActionNone
		if p.Verdict != VerdictUnknown && p.Verdict != VerdictOfflink {
			p.Reason = "" // an unknown or offlink peer's reason says why it was not probed
		}
		c := p.Cached
		switch p.Verdict {
		case VerdictConflict:
			p.Action = ActionRefused
			p.Reason = fmt.Sprintf("conflict: %d MACs answer for %s; not choosing one", len(p.Replies), p.IP)
		case VerdictStale:
			if !c.Usable() || len(p.Owner) != 6 {
				continue // cannot happen for a classified stale peer
			}
			if why := policy.refusal(c, "change"); why != "" {
				p.Action, p.Reason = ActionRefused, why
				continue
			}
			n := Neighbor{IP: p.IP, Ifindex: c.Ifindex, Interface: c.Interface,
				MAC: p.Owner, State: StateReachable, Flags: c.Flags & FlagExternLearned}
			if c.State.Static() {
				n.State = c.State & (StatePermanent | StateNoARP)
			}
			plan = append(plan, Change{Peer: i, Op: OpReplace, Old: *c, New: n})
		case VerdictDead:
			if !policy.DeleteDead || c == nil {
				continue
			}
			if why := policy.refusal(c, "delete"); why != "" {
				p.Action, p.Reason = ActionRefused, why
				continue
			}
			plan = append(plan, Change{Peer: i, Op: OpDelete, Old: *c})
		}
	}
	return plan
}

// writeTimeout bounds one neighbour-table write, which runs to its end
// even after the caller's context is done.
const writeTimeout = 5 * time.Second

type neighKey struct {
	ifindex int
	ip      netip.Addr
}

func indexNeighbors(ns []Neighbor) map[neighKey]*Neighbor {
	m := make(map[neighKey]*Neighbor, len(ns))
	for i := range ns {
		m[neighKey{ns[i].Ifindex, ns[i].IP}] = &ns[i]
	}
	return m
}

// ApplyRepairs carries out a plan from PlanRepairs on table. It re-reads
// the table (one dump) just before writing and, for each change:
//   - if the entry already holds the owner's MAC: ActionHealed, no write;
//   - if it is gone, or now holds a MAC other than the snapshot's: no
//     write (ActionNone or ActionRefused, with the reason);
//   - otherwise writes (ActionReplaced, ActionDeleted), or under DryRun
//     reports ActionWouldReplace / ActionWouldDelete.
//
// Once ctx is done no further write starts; the rest get ActionNone and
// the reason. It needs CAP_NET_ADMIN to write; a permission error stops
// it and is returned (errors.Is(err, os.ErrPermission)).
func ApplyRepairs(ctx context.Context, table NeighborTable, peers []Peer, plan []Change, policy RepairPolicy) error {
	if len(plan) == 0 {
		return nil
	}
	now, err := table.Neighbors(ctx)
	if err != nil {
		for _, c := range plan {
			peers[c.Peer].Action, peers[c.Peer].Reason = ActionNone, "not repaired: "+err.Error()
		}
		return fmt.Errorf("arpprobe: re-read neighbours before repair: %w", err)
	}
	current := indexNeighbors(now)
	var stop error
	for _, c := range plan {
		p := &peers[c.Peer]
		if stop == nil {
			if err := ctx.Err(); err != nil {
				stop = fmt.Errorf("arpprobe: repair stopped: %w", err)
			}
		}
		if stop != nil {
			p.Action, p.Reason = ActionNone, "not repaired: "+stop.Error()
			continue
		}
		cur := current[neighKey{c.Old.Ifindex, c.Old.IP}]
		p.Action, p.Reason = decide(c, cur, policy)
		if p.Action != ActionReplaced && p.Action != ActionDeleted {
			continue
		}
		// A write that has started is finished even if ctx ends meanwhile
		// (SIGINT mid-repair): ctx is only checked between writes.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		var werr error
		if c.Op == OpReplace {
			// The entry keeps the kind it has now: pinned or unpinned
			// since the snapshot, it stays as it was made.
			n := c.New
			n.State = StateReachable
			if cur.State.Static() {
				n.State = cur.State & (StatePermanent | StateNoARP)
			}
			werr = table.SetNeighbor(wctx, n)
		} else {
			werr = table.DeleteNeighbor(wctx, c.Old)
		}
		cancel()
		if werr != nil {
			p.Action, p.Reason = ActionNone, "write failed: "+werr.Error()
			if isPermission(werr) {
				stop = werr // every further write would fail the same way
			}
		}
	}
	return stop
}

// decide compares a planned change with the entry as re-read (cur, nil
// when gone) and says what to do.
func decide(c Change, cur *Neighbor, policy RepairPolicy) (Action, string) {
	switch {
	case cur == nil:
		return ActionNone, "entry gone since the snapshot; not re-added"
	case c.Op == OpReplace && cur.Usable() && bytes.Equal(cur.MAC, c.New.MAC):
		return ActionHealed, ""
	case len(cur.MAC) == 6 && !bytes.Equal(cur.MAC, c.Old.MAC):
		return ActionRefused, fmt.Sprintf("entry changed since the snapshot (now %s); not overwritten", net.HardwareAddr(cur.MAC))
	case cur.State.Static() && !c.Old.State.Static() && !policy.IncludePermanent:
		return ActionRefused, fmt.Sprintf("entry became %s since the snapshot; not changed", cur.State)
	case cur.Flags&FlagExternLearned != 0 && c.Old.Flags&FlagExternLearned == 0 && !policy.IncludeExternLearn:
		return ActionRefused, "entry became extern_learn (a control plane took it) since the snapshot; not changed"
	}
	write, dry := ActionReplaced, ActionWouldReplace
	if c.Op == OpDelete {
		write, dry = ActionDeleted, ActionWouldDelete
	}
	if policy.DryRun {
		return dry, ""
	}
	return write, ""
}
