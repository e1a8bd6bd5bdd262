package main

import (
	"net"
	"net/netip"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func neigh(ip, mac string, s arpprobe.State) *arpprobe.Neighbor {
	n := &arpprobe.Neighbor{IP: netip.MustParseAddr(ip), Ifindex: 2, Interface: "lan0", State: s}
	if mac != "" {
		n.MAC = mustMAC(mac)
	}
	return n
}

// sampleResult is a repair run with a peer of every verdict and the
// actions a repair gives them.
func sampleResult() *result {
	src := netip.MustParseAddr("198.18.0.1")
	peer := func(ip string) arpprobe.Peer {
		return arpprobe.Peer{IP: netip.MustParseAddr(ip), Interface: "lan0", Ifindex: 2, Source: src}
	}
	reply := func(mac string, unicast bool, rtt time.Duration) arpprobe.Reply {
		return arpprobe.Reply{MAC: mustMAC(mac), Unicast: unicast, RTT: rtt, Count: 1}
	}
	ok := peer("198.18.0.2")
	ok.Cached = neigh("198.18.0.2", "02:00:00:00:00:02", arpprobe.StateReachable)
	ok.Replies = []arpprobe.Reply{reply("02:00:00:00:00:02", true, 250*time.Microsecond)}
	ok.Owner, ok.Verdict, ok.Action = ok.Replies[0].MAC, arpprobe.VerdictOK, arpprobe.ActionNone
	ok.After = ok.Cached

	stale := peer("198.18.0.3")
	stale.Cached = neigh("198.18.0.3", "02:00:00:00:00:99", arpprobe.StateStale)
	stale.Replies = []arpprobe.Reply{reply("02:00:00:00:00:03", false, 500*time.Microsecond)}
	stale.Owner, stale.Verdict, stale.Action = stale.Replies[0].MAC, arpprobe.VerdictStale, arpprobe.ActionReplaced
	stale.After = neigh("198.18.0.3", "02:00:00:00:00:03", arpprobe.StateReachable)

	dead := peer("198.18.0.4")
	dead.Cached = neigh("198.18.0.4", "02:00:00:00:00:98", arpprobe.StateStale)
	dead.Verdict, dead.Action = arpprobe.VerdictDead, arpprobe.ActionNone
	dead.After = dead.Cached

	conflict := peer("198.18.0.5")
	conflict.Cached = neigh("198.18.0.5", "02:00:00:00:00:05", arpprobe.StateReachable)
	conflict.Replies = []arpprobe.Reply{reply("02:00:00:00:00:05", true, time.Millisecond),
		reply("02:00:00:00:00:06", false, 2*time.Millisecond)}
	conflict.Verdict, conflict.Action = arpprobe.VerdictConflict, arpprobe.ActionRefused
	conflict.Reason = "conflict: 2 MACs answer for 198.18.0.5; not choosing one"
	conflict.After = conflict.Cached

	uncached := peer("198.18.0.6")
	uncached.Cached = neigh("198.18.0.6", "", arpprobe.StateFailed)
	uncached.Replies = []arpprobe.Reply{reply("02:00:00:00:00:07", false, 300*time.Microsecond)}
	uncached.Owner, uncached.Verdict, uncached.Action = uncached.Replies[0].MAC, arpprobe.VerdictUncached, arpprobe.ActionNone

	offlink := arpprobe.Peer{IP: netip.MustParseAddr("198.19.17.9"), Verdict: arpprobe.VerdictOfflink,
		Action: arpprobe.ActionNone, Reason: "reached through gateway 198.18.0.254 (route 0.0.0.0/0)"}

	unknown := peer("198.18.0.7")
	unknown.Verdict, unknown.Action = arpprobe.VerdictUnknown, arpprobe.ActionNone
	unknown.Reason = "deadline exceeded before the peer was checked"

	rep := &arpprobe.Report{
		Peers: []arpprobe.Peer{ok, stale, dead, conflict, uncached, offlink, unknown},
		Summary: arpprobe.Summary{Checked: 7, OK: 1, Stale: 1, Dead: 1, Conflict: 1, Uncached: 1,
			Offlink: 1, Unknown: 1, Repaired: 1},
		Stats:    arpprobe.Stats{SentUnicast: 7, SentBroadcast: 4, Received: 9, Replies: 6, KernelDrops: 3},
		Started:  time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC),
		Duration: 1234567 * time.Microsecond,
	}
	rep.Stats.Dropped[arpprobe.DropShort] = 1
	rep.Stats.Dropped[arpprobe.DropUnsolicited] = 2
	return &result{command: "repair", report: rep, status: exitStatus(rep.Peers)}
}

// healthyResult is a verify run in which all is well.
func healthyResult() *result {
	res := sampleResult()
	rep := res.report
	rep.Peers = []arpprobe.Peer{rep.Peers[0], rep.Peers[4], rep.Peers[5]}
	rep.Summary = arpprobe.Summary{Checked: 3, OK: 1, Uncached: 1, Offlink: 1}
	res.command, res.status = "verify", exitStatus(rep.Peers)
	return res
}
