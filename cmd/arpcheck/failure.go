package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// The causes of exit status 3, as the JSON report's "error" names them.
const (
	causeUsage       = "usage"       // a flag or argument the command does not take
	causeBadInput    = "bad-input"   // a malformed peer, or a peer file that cannot be read
	causePrivilege   = "privilege"   // a missing capability
	causeInterface   = "interface"   // --interface names no interface
	causeLock        = "lock"        // another run holds --lock
	causeInterrupted = "interrupted" // SIGINT or SIGTERM before every peer was checked
	causeUnchecked   = "unchecked"   // some peers got verdict unknown (deadline, send error)
	causeOther       = "error"       // anything else: the message says what
)

// usageErr is a mistake on the command line.
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

// inputErr is a peer list that could not be read or parsed: an argument
// (arg, counting from 1) or a file (file, "stdin" for standard input).
type inputErr struct {
	arg  int
	file string
	err  error
}

func (e *inputErr) Error() string {
	if e.arg > 0 {
		return fmt.Sprintf("argument %d: %v", e.arg, e.err)
	}
	return e.err.Error()
}

func (e *inputErr) Unwrap() error { return e.err }

// errInterrupted ends a run cut short by a signal.
var errInterrupted = errors.New("interrupted")

// uncheckedErr says that some peers could not be checked.
type uncheckedErr struct {
	unknown, checked int
	why              string // " within the deadline of 2s", or ""
}

func (e *uncheckedErr) Error() string {
	return fmt.Sprintf("%d of %d peers could not be checked%s", e.unknown, e.checked, e.why)
}

// failure describes why a run exits 3, for the JSON report.
type failure struct {
	Cause   string `json:"cause"`
	Message string `json:"message"`
	// Where the bad input is: a file ("stdin" for standard input) and
	// line, or a command-line argument, counting from 1.
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Argument int    `json:"argument,omitempty"`
	// Capability is the missing capability, such as "CAP_NET_RAW".
	Capability string `json:"capability,omitempty"`
}

// describeFailure returns what err, which ends a run with status 3,
// says to a program: its cause and where. A joined error is described
// by its most telling part: a missing privilege first, a signal last.
func describeFailure(err error) *failure {
	f := &failure{Cause: causeOther, Message: messageText(err)}
	var (
		ce *arpprobe.CapabilityError
		ie *inputErr
		pe *arpprobe.PeerError
		ue *usageErr
		un *uncheckedErr
	)
	switch {
	case errors.As(err, &ce):
		f.Cause, f.Capability = causePrivilege, ce.Capability
	case errors.Is(err, os.ErrPermission) && !errors.As(err, &ie):
		f.Cause = causePrivilege
	case errors.As(err, &ue):
		f.Cause = causeUsage
	case errors.As(err, &ie):
		f.Cause, f.Argument, f.File = causeBadInput, ie.arg, ie.file
		if errors.As(err, &pe) {
			f.Line = pe.Line
		}
	case errors.Is(err, arpprobe.ErrUnknownInterface):
		f.Cause = causeInterface
	case errors.Is(err, errLockHeld):
		f.Cause = causeLock
	case errors.As(err, &un):
		f.Cause = causeUnchecked
	case errors.Is(err, errInterrupted), errors.Is(err, context.Canceled):
		f.Cause = causeInterrupted
	}
	return f
}

// messageText is an error's text for one line: its lines (the error
// and the hints privilegeError adds) joined by "; ".
func messageText(err error) string {
	var lines []string
	for l := range strings.Lines(errorText(err)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, strings.TrimSuffix(l, ";"))
		}
	}
	return strings.Join(lines, "; ")
}
