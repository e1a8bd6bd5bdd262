package main

import (
	"testing"

	"github.com/arpcheck/arpcheck/arpprobe"
)

func TestPeerStatus(t *testing.T) {
	tests := []struct {
		verdict arpprobe.Verdict
		action  arpprobe.Action
		want    int
	}{
		{arpprobe.VerdictOK, arpprobe.ActionNone, 0},
		{arpprobe.VerdictUncached, arpprobe.ActionNone, 0},
		{arpprobe.VerdictOfflink, arpprobe.ActionNone, 0},
		{arpprobe.VerdictDead, arpprobe.ActionNone, 1},
		{arpprobe.VerdictDead, arpprobe.ActionWouldDelete, 1},
		{arpprobe.VerdictDead, arpprobe.ActionRefused, 1},
		{arpprobe.VerdictDead, arpprobe.ActionDeleted, 0},
		{arpprobe.VerdictStale, arpprobe.ActionNone, 2},
		{arpprobe.VerdictStale, arpprobe.ActionWouldReplace, 2},
		{arpprobe.VerdictStale, arpprobe.ActionRefused, 2},
		{arpprobe.VerdictStale, arpprobe.ActionReplaced, 0},
		{arpprobe.VerdictStale, arpprobe.ActionHealed, 0},
		{arpprobe.VerdictConflict, arpprobe.ActionNone, 2},
		{arpprobe.VerdictConflict, arpprobe.ActionRefused, 2},
		{arpprobe.VerdictUnknown, arpprobe.ActionNone, 3},
		{"", "", 3},
	}
	for _, tt := range tests {
		p := arpprobe.Peer{Verdict: tt.verdict, Action: tt.action}
		if got := peerStatus(&p); got != tt.want {
			t.Errorf("peerStatus(%s, %s) = %d; want %d", tt.verdict, tt.action, got, tt.want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	peer := func(v arpprobe.Verdict, a arpprobe.Action) arpprobe.Peer {
		return arpprobe.Peer{Verdict: v, Action: a}
	}
	var (
		ok       = peer(arpprobe.VerdictOK, arpprobe.ActionNone)
		uncached = peer(arpprobe.VerdictUncached, arpprobe.ActionNone)
		offlink  = peer(arpprobe.VerdictOfflink, arpprobe.ActionNone)
		dead     = peer(arpprobe.VerdictDead, arpprobe.ActionNone)
		deleted  = peer(arpprobe.VerdictDead, arpprobe.ActionDeleted)
		stale    = peer(arpprobe.VerdictStale, arpprobe.ActionNone)
		replaced = peer(arpprobe.VerdictStale, arpprobe.ActionReplaced)
		healed   = peer(arpprobe.VerdictStale, arpprobe.ActionHealed)
		wouldRep = peer(arpprobe.VerdictStale, arpprobe.ActionWouldReplace)
		conflict = peer(arpprobe.VerdictConflict, arpprobe.ActionRefused)
		unknown  = peer(arpprobe.VerdictUnknown, arpprobe.ActionNone)
	)
	tests := []struct {
		name  string
		peers []arpprobe.Peer
		want  int
	}{
		{"no peers", nil, 0},
		{"all fine", []arpprobe.Peer{ok, uncached, offlink}, 0},
		{"a dead peer", []arpprobe.Peer{ok, dead, offlink}, 1},
		{"a stale peer beats a dead one", []arpprobe.Peer{dead, stale, ok}, 2},
		{"a conflict", []arpprobe.Peer{ok, conflict}, 2},
		{"unknown beats everything", []arpprobe.Peer{stale, conflict, dead, unknown}, 3},
		{"repair: replaced and healed stale peers no longer count", []arpprobe.Peer{ok, replaced, healed}, 0},
		{"repair: a dead peer left beside a repaired one", []arpprobe.Peer{replaced, dead}, 1},
		{"repair: deleted dead entries no longer count", []arpprobe.Peer{deleted, ok}, 0},
		{"repair: stale left unrepaired", []arpprobe.Peer{replaced, stale}, 2},
		{"dry run: would-replace is still stale", []arpprobe.Peer{wouldRep}, 2},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.peers); got != tt.want {
			t.Errorf("%s: exitStatus = %d; want %d", tt.name, got, tt.want)
		}
	}
}

func TestStateName(t *testing.T) {
	for status, want := range map[int]string{0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN", 4: "UNKNOWN"} {
		if got := stateName(status); got != want {
			t.Errorf("stateName(%d) = %q; want %q", status, got, want)
		}
	}
}
