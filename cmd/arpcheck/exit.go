package main

import (
	"strconv"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// The exit statuses, as monitoring plugins use them.
const (
	exitOK       = 0 // every peer ok, uncached or offlink
	exitWarning  = 1 // some peer dead (left), none worse
	exitCritical = 2 // some peer stale (left unrepaired) or in conflict
	exitUnknown  = 3 // could not check: usage, bad input, privilege, lock, unknown peers
)

// peerStatus is the exit status one peer calls for, judged after any
// repair: a stale entry that was replaced or found healed, and a dead
// peer whose entry was deleted, are no longer wrong.
func peerStatus(p *arpprobe.Peer) int {
	switch p.Verdict {
	case arpprobe.VerdictOK, arpprobe.VerdictUncached, arpprobe.VerdictOfflink:
		return exitOK
	case arpprobe.VerdictDead:
		if p.Action == arpprobe.ActionDeleted {
			return exitOK
		}
		return exitWarning
	case arpprobe.VerdictStale:
		if p.Action == arpprobe.ActionReplaced || p.Action == arpprobe.ActionHealed {
			return exitOK
		}
		return exitCritical
	case arpprobe.VerdictConflict:
		return exitCritical
	}
	return exitUnknown // unknown, or a verdict this program does not know
}

// exitStatus is the exit status of a run that checked peers: the worst
// status of any peer (unknown, 3, being the worst).
func exitStatus(peers []arpprobe.Peer) int {
	status := exitOK
	for i := range peers {
		status = max(status, peerStatus(&peers[i]))
	}
	return status
}

// stateName is the monitoring state of an exit status, as the nagios
// format prints it.
func stateName(status int) string {
	switch status {
	case exitOK:
		return "OK"
	case exitWarning:
		return "WARNING"
	case exitCritical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// exitError ends the program with a status; err, if set, is printed to
// standard error first.
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return "exit status " + strconv.Itoa(e.status)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// fail returns an error that ends the program with status 3 after
// printing err.
func fail(err error) error { return &exitError{status: exitUnknown, err: err} }
