package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// writeText writes the report as a table for people, one peer a line,
// and a summary line. With quiet, only the peers that need attention
// (a status above 0, or an action taken or refused) and the summary are
// written, and nothing at all when there are none.
func writeText(w io.Writer, res *result, quiet bool) error {
	rep := res.report
	var rows []*arpprobe.Peer
	for i := range rep.Peers {
		p := &rep.Peers[i]
		if !quiet || noteworthy(p) {
			rows = append(rows, p)
		}
	}
	if quiet && len(rows) == 0 {
		return nil
	}
	repair := res.command == "repair"
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	if len(rows) > 0 {
		head := "IP\tINTERFACE\tCACHED\tREPLIES\tVERDICT\tACTION"
		if repair {
			head += "\tAFTER"
		}
		fmt.Fprintln(tw, head+"\tREASON")
	}
	for _, p := range rows {
		line := strings.Join([]string{p.IP.String(), orDash(p.Interface), entryText(p.Cached),
			repliesText(p.Replies), string(p.Verdict), string(p.Action)}, "\t")
		if repair {
			line += "\t" + entryText(p.After)
		}
		fmt.Fprintln(tw, line+"\t"+p.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads the cell before an empty last column.
	var out strings.Builder
	for line := range strings.Lines(table.String()) {
		out.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	out.WriteString(summaryLine(res) + "\n")
	_, err := io.WriteString(w, out.String())
	return err
}

// noteworthy reports whether quiet text output shows p.
func noteworthy(p *arpprobe.Peer) bool {
	return peerStatus(p) != exitOK || p.Action != arpprobe.ActionNone && p.Action != ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// entryText shows an entry as ip-neighbour does: "02:00:00:00:00:01
// STALE", the state alone without a MAC, "-" for none.
func entryText(n *arpprobe.Neighbor) string {
	if n == nil {
		return "-"
	}
	if len(n.MAC) == 0 {
		return n.State.String()
	}
	return n.MAC.String() + " " + n.State.String()
}

// repliesText lists the MACs that answered, "-" for none.
func repliesText(rs []arpprobe.Reply) string {
	if len(rs) == 0 {
		return "-"
	}
	macs := make([]string, len(rs))
	for i, r := range rs {
		macs[i] = r.MAC.String()
	}
	return strings.Join(macs, ",")
}

// summaryLine says how many peers got each verdict, and what a repair
// did, as in "6 peers checked in 1.02s: 1 ok, 1 stale (1 repaired), 1 dead".
func summaryLine(res *result) string {
	rep := res.report
	s := rep.Summary
	var parts []string
	for _, v := range arpprobe.Verdicts {
		if n := s.Count(v); n > 0 {
			part := fmt.Sprintf("%d %s", n, v)
			if v == arpprobe.VerdictStale && res.command == "repair" {
				part += fmt.Sprintf(" (%d repaired)", s.Repaired)
			}
			parts = append(parts, part)
		}
	}
	line := fmt.Sprintf("%d %s checked in %s", s.Checked, plural(s.Checked, "peer", "peers"), durationText(rep.Duration))
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	if acts := actionCounts(rep.Peers); acts != "" {
		line += "; " + acts
	}
	if res.dryRun {
		line += " (dry run: nothing changed)"
	}
	return line
}

// actionCounts lists the actions other than none, in a stable order.
func actionCounts(peers []arpprobe.Peer) string {
	order := []arpprobe.Action{arpprobe.ActionReplaced, arpprobe.ActionHealed, arpprobe.ActionDeleted,
		arpprobe.ActionWouldReplace, arpprobe.ActionWouldDelete, arpprobe.ActionRefused}
	n := make(map[arpprobe.Action]int)
	for i := range peers {
		n[peers[i].Action]++
	}
	var parts []string
	for _, a := range order {
		if n[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[a], a))
		}
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// durationText shows a run's duration with three figures or so: 1.02s,
// 12.3ms, 850µs.
func durationText(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}
