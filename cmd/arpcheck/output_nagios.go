package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// maxNagiosPeers is how many peers the long output lists before
// "... and N more": plugin output is cut at a few kilobytes by Nagios.
const maxNagiosPeers = 50

// The nagios format follows the Monitoring Plugins guidelines: a short
// first line, the status and counts, with performance data after '|';
// then the long output, a line for each peer that needs attention or
// had an action, worst first:
//
//	ARPCHECK CRITICAL - 1 stale; 6 peers checked | checked=6;;;0 ok=4;;;0 stale=1;0;0;0 dead=0;0;;0 ...
//	stale 198.18.0.3 on eth0: cached 02:00:00:00:00:99 STALE, answered by 02:00:00:00:00:03
//
// The thresholds in the performance data are the exit rule: any stale
// entry or conflict is CRITICAL (warn and crit range 0), any dead peer
// WARNING (warn range 0). For repair, stale and dead count the peers
// left so after the repair; repaired and deleted count the others.

// nagiosProblems are the verdicts the first line counts, worst first.
var nagiosProblems = []arpprobe.Verdict{arpprobe.VerdictUnknown, arpprobe.VerdictConflict,
	arpprobe.VerdictStale, arpprobe.VerdictDead}

// left counts the peers of each verdict that are still a problem after
// the run: a repaired stale entry or a deleted dead one is not.
func left(peers []arpprobe.Peer) map[arpprobe.Verdict]int {
	n := make(map[arpprobe.Verdict]int)
	for i := range peers {
		if p := &peers[i]; peerStatus(p) != exitOK {
			n[p.Verdict]++
		}
	}
	return n
}

// nagiosFirstLine is the status and the counts, without performance
// data.
func nagiosFirstLine(res *result, n map[arpprobe.Verdict]int) string {
	var problems []string
	for _, v := range nagiosProblems {
		if n[v] == 0 {
			continue
		}
		s := fmt.Sprintf("%d %s", n[v], v)
		if res.command == "repair" && (v == arpprobe.VerdictStale || v == arpprobe.VerdictDead) {
			s += " left"
		}
		problems = append(problems, s)
	}
	s := res.report.Summary
	text := fmt.Sprintf("%d %s checked", s.Checked, plural(s.Checked, "peer", "peers"))
	if s.Repaired > 0 {
		text += fmt.Sprintf(", %d repaired", s.Repaired)
	}
	if s.Deleted > 0 {
		text += fmt.Sprintf(", %d deleted", s.Deleted)
	}
	if res.dryRun {
		text += " (dry run: nothing changed)"
	}
	if len(problems) > 0 {
		text = strings.Join(problems, ", ") + "; " + text
	}
	return "ARPCHECK " + stateName(res.status) + " - " + text
}

// nagiosPerfdata is the performance data: 'label'=value[UOM];warn;crit;min;max.
func nagiosPerfdata(res *result, n map[arpprobe.Verdict]int) string {
	s := res.report.Summary
	perf := []struct {
		label      string
		value      int
		warn, crit string
	}{
		{"checked", s.Checked, "", ""},
		{"ok", s.OK, "", ""},
		{"stale", n[arpprobe.VerdictStale], "0", "0"},
		{"dead", n[arpprobe.VerdictDead], "0", ""},
		{"conflict", s.Conflict, "0", "0"},
		{"uncached", s.Uncached, "", ""},
		{"offlink", s.Offlink, "", ""},
		{"unknown", s.Unknown, "", ""}, // UNKNOWN is no threshold's state
		{"repaired", s.Repaired, "", ""},
		{"deleted", s.Deleted, "", ""},
	}
	var b strings.Builder
	for _, p := range perf {
		fmt.Fprintf(&b, "%s=%d;%s;%s;0 ", p.label, p.value, p.warn, p.crit)
	}
	fmt.Fprintf(&b, "duration=%.3fs;;;0", res.report.Duration.Seconds())
	return b.String()
}

// nagiosPeerLine describes one peer for the long output: verdict,
// address and interface, the cached entry, who answered, the action
// and the reason.
func nagiosPeerLine(p *arpprobe.Peer) string {
	var b strings.Builder
	b.WriteString(string(p.Verdict) + " " + p.IP.String())
	if p.Interface != "" {
		b.WriteString(" on " + p.Interface)
	}
	var details []string
	if p.Cached != nil && len(p.Cached.MAC) > 0 {
		details = append(details, "cached "+entryText(p.Cached))
	}
	switch {
	case len(p.Replies) > 0:
		details = append(details, "answered by "+strings.ReplaceAll(repliesText(p.Replies), ",", " "))
	case p.Verdict == arpprobe.VerdictDead:
		details = append(details, "no answer")
	}
	if len(details) == 2 { // the entry and the answers: one clause
		details = []string{details[0] + ", " + details[1]}
	}
	switch acted := p.Action != arpprobe.ActionNone && p.Action != ""; {
	case acted && p.Reason != "":
		details = append(details, string(p.Action)+" ("+p.Reason+")")
	case acted:
		details = append(details, string(p.Action))
	case p.Reason != "":
		details = append(details, p.Reason)
	}
	if text := strings.Join(details, "; "); text != "" {
		b.WriteString(": " + text)
	}
	return nagiosText(b.String())
}

// nagiosText makes s fit on one line of plugin output: '|' would start
// performance data.
func nagiosText(s string) string {
	return strings.NewReplacer("\n", " ", "|", "/").Replace(s)
}

func writeNagios(w io.Writer, res *result) error {
	rep := res.report
	n := left(rep.Peers)
	var b strings.Builder
	b.WriteString(nagiosFirstLine(res, n) + " | " + nagiosPerfdata(res, n) + "\n")
	if res.status == exitUnknown && res.err != nil {
		b.WriteString(nagiosText(messageText(res.err)) + "\n")
	}
	var listed []*arpprobe.Peer
	for i := range rep.Peers {
		if p := &rep.Peers[i]; noteworthy(p) {
			listed = append(listed, p)
		}
	}
	slices.SortStableFunc(listed, func(a, b *arpprobe.Peer) int { return cmp.Compare(peerStatus(b), peerStatus(a)) })
	for i, p := range listed {
		if i == maxNagiosPeers {
			fmt.Fprintf(&b, "... and %d more\n", len(listed)-maxNagiosPeers)
			break
		}
		b.WriteString(nagiosPeerLine(p) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeNagiosError writes the UNKNOWN line of a run that could not check.
func writeNagiosError(w io.Writer, err error) error {
	_, werr := fmt.Fprintln(w, "ARPCHECK UNKNOWN - "+nagiosText(messageText(err)))
	return werr
}
