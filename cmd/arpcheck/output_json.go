package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// The JSON report, field for field as in CLI.md; fields after those of
// the contract are extras. The report object is jsonHead's fields, then
// "peers" (written by writeJSON a peer at a time), then jsonTail's.

type jsonPeer struct {
	IP        string      `json:"ip"`
	Interface *string     `json:"interface"` // null when none: offlink peers
	Cached    *jsonEntry  `json:"cached"`
	Replies   []jsonReply `json:"replies"`
	Owner     *string     `json:"owner"`
	Verdict   string      `json:"verdict"`
	Action    string      `json:"action"`
	Reason    string      `json:"reason"`
	After     *jsonEntry  `json:"after"`
	// Extras.
	Source string `json:"source,omitempty"`
}

type jsonEntry struct {
	MAC   string `json:"mac"`
	State string `json:"state"`
}

type jsonReply struct {
	MAC     string  `json:"mac"`
	Unicast bool    `json:"unicast"`
	RTTMS   float64 `json:"rtt_ms"`
	Count   int     `json:"count"` // extra
}

type jsonSummary struct {
	Checked  int `json:"checked"`
	OK       int `json:"ok"`
	Stale    int `json:"stale"`
	Dead     int `json:"dead"`
	Conflict int `json:"conflict"`
	Uncached int `json:"uncached"`
	Offlink  int `json:"offlink"`
	Unknown  int `json:"unknown"`
	Repaired int `json:"repaired"`
	Deleted  int `json:"deleted"` // extra: dead peers whose entry was deleted
}

type jsonStats struct {
	SentUnicast   uint64            `json:"sent_unicast"`
	SentBroadcast uint64            `json:"sent_broadcast"`
	Received      uint64            `json:"received"`
	Replies       uint64            `json:"replies"`
	Dropped       map[string]uint64 `json:"dropped"` // by reason; "kernel": the receive ring was full
	// Rejected: frames the kernel's socket filter rejected, by reason;
	// absent when it could not count them (no CAP_BPF).
	Rejected map[string]uint64 `json:"rejected,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func jsonEntryOf(n *arpprobe.Neighbor) *jsonEntry {
	if n == nil {
		return nil
	}
	e := &jsonEntry{State: n.State.String()}
	if len(n.MAC) > 0 {
		e.MAC = n.MAC.String()
	}
	return e
}

// jsonHead and jsonTail are the report's fields before and after
// "peers", in the contract's order; writeJSON writes the peers between
// them one at a time.
type jsonHead struct {
	Version    int     `json:"version"`
	Command    string  `json:"command"`
	DurationMS float64 `json:"duration_ms"`
}

type jsonTail struct {
	Summary  jsonSummary `json:"summary"`
	Started  time.Time   `json:"started"`
	DryRun   bool        `json:"dry_run,omitempty"`
	ExitCode int         `json:"exit_code"`
	Stats    jsonStats   `json:"stats"`
	Error    *failure    `json:"error,omitempty"` // why exit_code is 3
}

func jsonHeadOf(res *result) jsonHead {
	return jsonHead{Version: 1, Command: res.command, DurationMS: ms(res.report.Duration)}
}

func jsonTailOf(res *result) jsonTail {
	rep := res.report
	s := rep.Summary
	t := jsonTail{
		Summary: jsonSummary{Checked: s.Checked, OK: s.OK, Stale: s.Stale, Dead: s.Dead, Conflict: s.Conflict,
			Uncached: s.Uncached, Offlink: s.Offlink, Unknown: s.Unknown, Repaired: s.Repaired, Deleted: s.Deleted},
		Started:  rep.Started.UTC(),
		DryRun:   res.dryRun,
		ExitCode: res.status,
		Stats: jsonStats{SentUnicast: rep.Stats.SentUnicast, SentBroadcast: rep.Stats.SentBroadcast,
			Received: rep.Stats.Received, Replies: rep.Stats.Replies, Dropped: droppedByReason(&rep.Stats),
			Rejected: rejectedByReason(&rep.Stats)},
	}
	if res.status == exitUnknown && res.err != nil {
		t.Error = describeFailure(res.err)
	}
	return t
}

// jsonPeerOf converts one peer of a report.
func jsonPeerOf(p *arpprobe.Peer) jsonPeer {
	jp := jsonPeer{
		IP:      p.IP.String(),
		Cached:  jsonEntryOf(p.Cached),
		Replies: make([]jsonReply, len(p.Replies)),
		Verdict: string(p.Verdict),
		Action:  string(p.Action),
		Reason:  p.Reason,
		After:   jsonEntryOf(p.After),
	}
	if p.Interface != "" {
		jp.Interface = &p.Interface
	}
	if p.Source.IsValid() {
		jp.Source = p.Source.String()
	}
	for j, r := range p.Replies {
		jp.Replies[j] = jsonReply{MAC: r.MAC.String(), Unicast: r.Unicast, RTTMS: ms(r.RTT), Count: r.Count}
	}
	if len(p.Owner) > 0 {
		o := p.Owner.String()
		jp.Owner = &o
	}
	return jp
}

// droppedByReason names the received frames not used, by reason, and the
// frames the kernel dropped ("kernel").
func droppedByReason(st *arpprobe.Stats) map[string]uint64 {
	m := map[string]uint64{"kernel": st.KernelDrops}
	for r := arpprobe.DropReason(1); int(r) < len(st.Dropped); r++ {
		m[r.String()] = st.Dropped[r]
	}
	return m
}

// rejectedByReason names the frames the kernel's filter rejected, by
// reason, or is nil when they were not counted.
func rejectedByReason(st *arpprobe.Stats) map[string]uint64 {
	if !st.RejectsCounted {
		return nil
	}
	m := map[string]uint64{}
	for r := arpprobe.DropShort; int(r) < len(st.Rejected); r++ {
		if r != arpprobe.DropUnsolicited && r != arpprobe.DropVLAN {
			m[r.String()] = st.Rejected[r]
		}
	}
	return m
}

// writeJSONError writes the report of a run started at started that
// could not check anything: no peers, exit_code 3, and the error.
func writeJSONError(w io.Writer, command string, started time.Time, err error) error {
	rep := &arpprobe.Report{Started: started, Duration: time.Since(started)}
	return writeJSON(w, &result{command: command, report: rep, status: exitUnknown, err: err})
}

// writeJSON writes the report as one JSON object on one line, the same
// bytes encoding/json gives for the whole jsonReport, but a peer at a
// time: a report of 50,000 peers is never held twice in memory, as JSON
// values and as text.
func writeJSON(w io.Writer, res *result) error {
	head, err := json.Marshal(jsonHeadOf(res))
	if err != nil {
		return err
	}
	tail, err := json.Marshal(jsonTailOf(res))
	if err != nil {
		return err
	}
	// {"version":…,"duration_ms":…} + ,"peers":[…] + ,"summary":…}
	bw := bufio.NewWriter(w)
	bw.Write(head[:len(head)-1])
	bw.WriteString(`,"peers":[`)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range res.report.Peers {
		b.Reset()
		if err := enc.Encode(jsonPeerOf(&res.report.Peers[i])); err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	}
	bw.WriteString("],")
	bw.Write(tail[1:])
	bw.WriteByte('\n')
	return bw.Flush()
}
