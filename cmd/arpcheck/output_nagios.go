package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// maxNagiosAddrs is how many addresses of each problem the nagios line
// names before "...".
const maxNagiosAddrs = 5

// nagiosLine is the one line of the nagios format: the state from the
// exit status, the problems with a few of their addresses, and the
// summary as performance data, e.g.
//
//	ARPCHECK CRITICAL - 1 stale: 198.18.0.3; 6 peers checked | checked=6 ok=4 ...
func nagiosLine(res *result) string {
	rep := res.report
	var problems []string
	for _, v := range []arpprobe.Verdict{arpprobe.VerdictUnknown, arpprobe.VerdictConflict,
		arpprobe.VerdictStale, arpprobe.VerdictDead} {
		var addrs []string
		n := 0
		for i := range rep.Peers {
			p := &rep.Peers[i]
			if p.Verdict != v || peerStatus(p) == exitOK {
				continue // a repaired stale or deleted dead entry is no longer a problem
			}
			if n++; n <= maxNagiosAddrs {
				addrs = append(addrs, p.IP.String())
			}
		}
		if n == 0 {
			continue
		}
		if n > maxNagiosAddrs {
			addrs = append(addrs, "...")
		}
		left := ""
		if res.command == "repair" && (v == arpprobe.VerdictStale || v == arpprobe.VerdictDead) {
			left = " left"
		}
		problems = append(problems, fmt.Sprintf("%d %s%s: %s", n, v, left, strings.Join(addrs, " ")))
	}
	s := rep.Summary
	text := fmt.Sprintf("%d %s checked", s.Checked, plural(s.Checked, "peer", "peers"))
	if s.Repaired > 0 {
		text += fmt.Sprintf(", %d repaired", s.Repaired)
	}
	if len(problems) > 0 {
		text = strings.Join(problems, "; ") + "; " + text
	}
	perf := fmt.Sprintf("checked=%d ok=%d stale=%d dead=%d conflict=%d uncached=%d offlink=%d unknown=%d repaired=%d duration=%.3fs",
		s.Checked, s.OK, s.Stale, s.Dead, s.Conflict, s.Uncached, s.Offlink, s.Unknown, s.Repaired, rep.Duration.Seconds())
	return "ARPCHECK " + stateName(res.status) + " - " + text + " | " + perf
}

func writeNagios(w io.Writer, res *result) error {
	_, err := fmt.Fprintln(w, nagiosLine(res))
	return err
}

// writeNagiosError writes the UNKNOWN line of a run that could not check.
func writeNagiosError(w io.Writer, err error) error {
	msg := strings.ReplaceAll(errorText(err), "\n", " ")
	msg = strings.ReplaceAll(msg, "|", "/") // '|' starts performance data
	_, werr := fmt.Fprintln(w, "ARPCHECK UNKNOWN - "+msg)
	return werr
}
