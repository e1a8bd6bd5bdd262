package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

func step(w io.Writer, n int, format string, args ...any) {
	fmt.Fprintf(w, "\n%d. %s\n", n, fmt.Sprintf(format, args...))
}

// tableWriter prints an indented table with aligned columns.
type tableWriter struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func table(w io.Writer) *tableWriter {
	t := &tableWriter{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
}

func row(t *tableWriter, cells ...string) {
	fmt.Fprintf(t.tw, "   %s\n", strings.Join(cells, "\t"))
}

// Flush writes the table, without the blanks that pad an empty last cell.
func (t *tableWriter) Flush() {
	t.tw.Flush()
	for _, line := range strings.SplitAfter(t.buf.String(), "\n") {
		if line != "" {
			io.WriteString(t.w, strings.TrimRight(line, " \n")+"\n")
		}
	}
}

func printLAN(w io.Writer, l *lab) {
	tw := table(w)
	row(tw, "HOST", "ADDRESS", "MAC", "")
	row(tw, "client", l.lan.Prefix.Addr().String(), netns.HostMAC(0).String(), "runs arpcheck")
	for _, p := range peers {
		m := "-"
		if p.owner != nil {
			m = p.owner.String()
		}
		row(tw, p.name, p.addr.String(), m, p.story)
	}
	tw.Flush()
}

// printCache prints the client's entries on the LAN, with the MAC that
// owns each address now (the lab knows; the client does not).
func printCache(w io.Writer, ns []arpprobe.Neighbor) {
	tw := table(w)
	row(tw, "ADDRESS", "MAC", "STATE", "OWNER NOW")
	n := 0
	for _, p := range peers {
		for _, e := range ns {
			if e.IP == p.addr && e.Interface == netns.LANIface {
				row(tw, e.IP.String(), macString(e.MAC), e.State.String(), ownerString(p))
				n++
			}
		}
	}
	if n == 0 {
		row(tw, "(no entries)")
	}
	tw.Flush()
}

func ownerString(p peer) string {
	if p.owner == nil {
		return "nobody"
	}
	return p.owner.String()
}

func macString(m net.HardwareAddr) string {
	if len(m) == 0 {
		return "-"
	}
	return m.String()
}

func entryString(n *arpprobe.Neighbor) string {
	if n == nil {
		return "(no entry)"
	}
	return macString(n.MAC) + " " + n.State.String()
}

func printDials(w io.Writer, ds []dialResult) {
	tw := table(w)
	for _, d := range ds {
		took := d.took.Round(time.Millisecond).String()
		if d.took < time.Millisecond {
			took = "<1ms"
		}
		if d.err != nil {
			row(tw, d.to.String(), "failed", took, dialError(d.err))
		} else {
			row(tw, d.to.String(), "connected", took, fmt.Sprintf("%q", d.banner))
		}
	}
	tw.Flush()
}

func dialError(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

func printVerify(w io.Writer, rep *arpprobe.Report) {
	tw := table(w)
	row(tw, "PEER", "CACHED BEFORE", "ANSWERED", "VERDICT", "ENTRY AT THE END")
	changed := false
	for i := range rep.Peers {
		p := &rep.Peers[i]
		end := entryString(p.After)
		if entryChanged(p.Cached, p.After) {
			end += " *"
			changed = true
		}
		row(tw, p.IP.String(), entryString(p.Cached), answered(p.Replies), string(p.Verdict), end)
	}
	tw.Flush()
	fmt.Fprintf(w, "   %s: %d unicast and %d broadcast requests, %v\n", summary(rep.Summary),
		rep.Stats.SentUnicast, rep.Stats.SentBroadcast, rep.Duration.Round(time.Millisecond))
	if changed {
		fmt.Fprintln(w, "   * changed during the run, though verify writes nothing: the kernel saw the owner's\n"+
			"     reply to our broadcast request and updated its non-permanent entry by itself")
	}
}

func printRepair(w io.Writer, rep, verify *arpprobe.Report) {
	tw := table(w)
	row(tw, "PEER", "VERDICT", "ACTION", "BEFORE", "AFTER", "")
	for i := range rep.Peers {
		p := &rep.Peers[i]
		note := p.Reason
		if v := find(verify, p.IP); note == "" && v != nil && v.Verdict != p.Verdict && entryChanged(v.Cached, v.After) {
			note = "already healed by the kernel in step 4"
		}
		row(tw, p.IP.String(), string(p.Verdict), string(p.Action), entryString(p.Cached), entryString(p.After), note)
	}
	tw.Flush()
	fmt.Fprintf(w, "   %s; %d repaired\n", summary(rep.Summary), rep.Summary.Repaired)
	seen := map[arpprobe.Action]bool{}
	for _, p := range rep.Peers {
		seen[p.Action] = true
	}
	for _, a := range []struct {
		a    arpprobe.Action
		text string
	}{
		{arpprobe.ActionReplaced, "replaced: repair wrote the owner's MAC it verified in this run"},
		{arpprobe.ActionHealed, "healed: the entry was right when re-read before writing (the kernel took the reply); nothing written"},
		{arpprobe.ActionDeleted, "deleted: nobody answered; the next packet makes the kernel ask by broadcast"},
	} {
		if seen[a.a] {
			fmt.Fprintln(w, "   "+a.text)
		}
	}
}

// entryChanged reports whether an entry's MAC differs between two reads,
// or it appeared or went.
func entryChanged(before, after *arpprobe.Neighbor) bool {
	if before == nil || after == nil {
		return before != after
	}
	return !bytes.Equal(before.MAC, after.MAC)
}

func find(rep *arpprobe.Report, ip netip.Addr) *arpprobe.Peer {
	for i := range rep.Peers {
		if rep.Peers[i].IP == ip {
			return &rep.Peers[i]
		}
	}
	return nil
}

func answered(rs []arpprobe.Reply) string {
	if len(rs) == 0 {
		return "nobody"
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.MAC.String()
	}
	return strings.Join(s, ", ")
}

func summary(s arpprobe.Summary) string {
	var parts []string
	for _, v := range arpprobe.Verdicts {
		if n := s.Count(v); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, v))
		}
	}
	return fmt.Sprintf("%d checked (%s)", s.Checked, strings.Join(parts, ", "))
}
