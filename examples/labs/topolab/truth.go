package main

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// key names one neighbour entry, or one peer object of arpcheck's report:
// an address on an interface. Iface is "" for a peer arpcheck reports
// without an interface (offlink).
type key struct {
	Iface string
	IP    netip.Addr
}

func (k key) String() string {
	if k.Iface == "" {
		return k.IP.String()
	}
	return k.Iface + " " + k.IP.String()
}

// afterKind is what must become of an entry when arpcheck has run.
type afterKind int

const (
	// kept: the entry is as it was (or still absent).
	kept afterKind = iota
	// replaced: the entry holds want.MAC, with the flags it had.
	replaced
	// deleted: the entry is gone.
	deleted
)

// want is the truth about one peer object arpcheck should report: the
// verdicts that are right for it (more than one where the truth allows
// either, as ok or offlink for the host's own address) and what must
// become of its entry. A want with no verdicts is an entry arpcheck must
// not report at all (on a NOARP interface).
type want struct {
	key
	verdicts []string
	after    afterKind
	mac      net.HardwareAddr // for replaced
	note     string           // why, for the table: "owner answers", ...
}

// String is the truth as the table shows it.
func (w want) String() string {
	v := strings.Join(w.verdicts, "/")
	if len(w.verdicts) == 0 {
		v = "not reported"
	}
	s := w.key.String() + ": " + v
	switch w.after {
	case replaced:
		s += ", replaced by " + w.mac.String()
	case deleted:
		s += ", deleted"
	}
	if w.note != "" {
		s += " (" + w.note + ")"
	}
	return s
}

// command is one arpcheck command line of a case, with its truth.
type command struct {
	args  []string // after "arpcheck", without --format json
	wants []want
}

func (c command) String() string { return "arpcheck " + strings.Join(c.args, " ") }

// entry is one neighbour entry as the lab compares it: what arpcheck
// could have written. The kernel's NUD state is compared only for whether
// it is PERMANENT or NOARP; the rest of it changes with traffic.
type entry struct {
	MAC    string
	Static bool // PERMANENT or NOARP
	Extern bool // extern_learn
	State  string
}

// same reports whether e and o are the same entry as far as a writer of
// the table is concerned.
func (e entry) same(o entry) bool {
	return e.MAC == o.MAC && e.Static == o.Static && e.Extern == o.Extern
}

func (e entry) String() string {
	s := e.MAC + " " + e.State
	if e.Extern {
		s += " extern_learn"
	}
	return s
}

// table is the prober's IPv4 neighbour table.
type table map[key]entry

// peer is one peer object of arpcheck's JSON report, the fields the lab
// reads.
type peer struct {
	IP        string  `json:"ip"`
	Interface *string `json:"interface"`
	Verdict   string  `json:"verdict"`
	Action    string  `json:"action"`
	Reason    string  `json:"reason"`
}

// report is arpcheck's JSON report, the fields the lab reads.
type report struct {
	Peers    []peer `json:"peers"`
	ExitCode int    `json:"exit_code"`
	Error    *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// outcome is how one run of a command went against its truth.
type outcome struct {
	right bool
	// got is what arpcheck said, one phrase per peer object, in the order
	// of the wants and then of anything it reported unasked.
	got []string
	// wrote lists the entries arpcheck changed without being asked to:
	// entries whose truth is kept, or that no want names.
	wrote []string
}

// wantExit is the exit status the truth of cmd calls for, by
// ../shared/CLI.md's rule: the worst over the peers, judged after any
// repair (a stale entry replaced and a dead entry deleted are no longer
// wrong).
func wantExit(cmd command) int {
	status := 0
	for _, w := range cmd.wants {
		if len(w.verdicts) == 0 {
			continue
		}
		s := 0
		switch w.verdicts[0] {
		case "stale":
			if w.after != replaced {
				s = 2
			}
		case "conflict":
			s = 2
		case "dead":
			if w.after != deleted {
				s = 1
			}
		case "unknown":
			s = 3
		}
		status = max(status, s)
	}
	return status
}

// judge compares one run's report and exit status, and the prober's
// table before and after it, with the truth of cmd. It is pure.
func judge(cmd command, rep report, exit int, before, after table) outcome {
	o := outcome{right: true}
	if want := wantExit(cmd); exit != want {
		o.right = false
		o.got = append(o.got, fmt.Sprintf("exit %d (truth: %d)", exit, want))
	}
	if rep.Error != nil {
		o.right = false
		o.got = append(o.got, "error: "+rep.Error.Message)
	}
	byKey := map[key]peer{}
	var order []key
	for _, p := range rep.Peers {
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			o.right = false
			o.got = append(o.got, fmt.Sprintf("a peer with a bad address %q", p.IP))
			continue
		}
		k := key{IP: ip}
		if p.Interface != nil {
			k.Iface = *p.Interface
		}
		if _, dup := byKey[k]; dup {
			o.right = false
			o.got = append(o.got, k.String()+": reported twice")
		}
		byKey[k] = p
		order = append(order, k)
	}
	named := map[key]bool{}
	for _, w := range cmd.wants {
		named[w.key] = true
		p, ok := byKey[w.key]
		if bare := (key{IP: w.IP}); !ok && slices.Contains(w.verdicts, "offlink") {
			// arpcheck reports an offlink peer without an interface.
			p, ok = byKey[bare]
			named[bare] = ok
		}
		switch {
		case !ok && len(w.verdicts) == 0:
			// Not reported, as it should be.
		case !ok:
			o.right = false
			o.got = append(o.got, w.key.String()+": missing")
		case len(w.verdicts) == 0:
			o.right = false
			o.got = append(o.got, w.key.String()+": "+describe(p)+" (should not be reported)")
		default:
			o.got = append(o.got, w.key.String()+": "+describe(p))
			if !slices.Contains(w.verdicts, p.Verdict) {
				o.right = false
			}
		}
		b, hadB := before[w.key]
		a, hasA := after[w.key]
		switch w.after {
		case kept:
			if hadB != hasA || (hadB && !b.same(a)) {
				o.right = false
				o.wrote = append(o.wrote, change(w.key, b, hadB, a, hasA))
			}
		case replaced:
			if !hasA || a.MAC != w.mac.String() || a.Extern != b.Extern {
				o.right = false
				o.got = append(o.got, w.key.String()+" after: "+state(a, hasA))
			}
		case deleted:
			if hasA {
				o.right = false
				o.got = append(o.got, w.key.String()+" after: "+state(a, hasA))
			}
		}
	}
	for _, k := range order {
		if !named[k] {
			o.right = false
			o.got = append(o.got, k.String()+": "+describe(byKey[k])+" (not expected)")
		}
	}
	for _, k := range sortedKeys(before, after) {
		if named[k] {
			continue
		}
		b, hadB := before[k]
		a, hasA := after[k]
		if hadB != hasA || (hadB && !b.same(a)) {
			o.right = false
			o.wrote = append(o.wrote, change(k, b, hadB, a, hasA))
		}
	}
	return o
}

// describe is a peer object in a few words: its verdict, and its action
// when it did something or refused.
func describe(p peer) string {
	s := p.Verdict
	if p.Action != "" && p.Action != "none" {
		s += " " + p.Action
	}
	return s
}

// state is an entry as read after a run, or "none".
func state(e entry, ok bool) string {
	if !ok {
		return "none"
	}
	return e.String()
}

// change describes a write to the entry k: added, deleted or changed.
func change(k key, b entry, hadB bool, a entry, hasA bool) string {
	switch {
	case !hadB:
		return fmt.Sprintf("added %s %s", k, a)
	case !hasA:
		return fmt.Sprintf("deleted %s", k)
	}
	return fmt.Sprintf("changed %s %s → %s", k, b, a)
}

// sortedKeys returns the keys of both tables, in a stable order.
func sortedKeys(ts ...table) []key {
	var ks []key
	for _, t := range ts {
		for k := range t {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	slices.SortFunc(ks, func(a, b key) int {
		if c := strings.Compare(a.Iface, b.Iface); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return ks
}
