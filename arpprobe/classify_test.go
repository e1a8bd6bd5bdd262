package arpprobe

import (
	"net"
	"net/netip"
	"testing"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
)

func entry(mac net.HardwareAddr, s State) *Neighbor {
	return &Neighbor{IP: netip.MustParseAddr("198.18.0.2"), Ifindex: 2, MAC: mac, State: s}
}

func replies(macs ...net.HardwareAddr) []Reply {
	var r []Reply
	for _, m := range macs {
		r = append(r, Reply{MAC: m, Count: 1})
	}
	return r
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		cached  *Neighbor
		replies []Reply
		want    Verdict
		owner   net.HardwareAddr
	}{
		{"reachable, cached MAC answers", entry(macA, StateReachable), replies(macA), VerdictOK, macA},
		{"stale state, cached MAC answers", entry(macA, StateStale), replies(macA), VerdictOK, macA},
		{"delay, cached MAC answers", entry(macA, StateDelay), replies(macA), VerdictOK, macA},
		{"probe, cached MAC answers", entry(macA, StateProbe), replies(macA), VerdictOK, macA},
		{"permanent, cached MAC answers", entry(macA, StatePermanent), replies(macA), VerdictOK, macA},
		{"noarp entry with MAC, answers", entry(macA, StateNoARP), replies(macA), VerdictOK, macA},
		{"reachable, another MAC answers", entry(macA, StateReachable), replies(macB), VerdictStale, macB},
		{"stale, another MAC answers", entry(macA, StateStale), replies(macB), VerdictStale, macB},
		{"permanent, another MAC answers", entry(macA, StatePermanent), replies(macB), VerdictStale, macB},
		{"delay, nobody answers", entry(macA, StateDelay), nil, VerdictDead, nil},
		{"permanent, nobody answers", entry(macA, StatePermanent), nil, VerdictDead, nil},
		{"no entry, nobody answers", nil, nil, VerdictDead, nil},
		{"no entry, one answers", nil, replies(macB), VerdictUncached, macB},
		{"incomplete, one answers", entry(nil, StateIncomplete), replies(macB), VerdictUncached, macB},
		{"failed with old MAC, one answers", entry(macA, StateFailed), replies(macA), VerdictUncached, macA},
		{"none state, one answers", entry(macA, StateNone), replies(macB), VerdictUncached, macB},
		{"cached and another answer", entry(macA, StateReachable), replies(macA, macB), VerdictConflict, nil},
		{"two others answer", entry(macA, StateStale), replies(macB, macC), VerdictConflict, nil},
		{"no entry, two answer", nil, replies(macB, macC), VerdictConflict, nil},
		{"incomplete, nobody answers", entry(nil, StateIncomplete), nil, VerdictDead, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, owner := Classify(tt.cached, tt.replies)
			if got != tt.want || owner.String() != tt.owner.String() {
				t.Errorf("Classify = %s, owner %q; want %s, owner %q", got, owner, tt.want, tt.owner)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    State
		want string
	}{
		{StateNone, "NONE"},
		{StateReachable, "REACHABLE"},
		{StatePermanent, "PERMANENT"},
		{StateStale | StateNoARP, "STALE|NOARP"},
		{0x100, "0x100"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("State(%#x).String() = %q; want %q", uint16(tt.s), got, tt.want)
		}
	}
}
