package arpprobe

import (
	"context"
	"net/netip"
	"testing"
)

// TestForeignVLANReplies: a reply still tagged with a VLAN ID comes from
// another VLAN's LAN (the kernel hands a socket its own interface's frames
// untagged), so it is dropped and counted; a priority tag (VLAN 0) is
// this LAN's.
func TestForeignVLANReplies(t *testing.T) {
	peer, us := netip.MustParseAddr(peerIP), netip.MustParseAddr("198.18.0.1")
	foreign := tag(replyFrame(macC, peer, proberMAC, us), etherTypeVLAN, 7)
	priority := tag(replyFrame(macA, peer, proberMAC, us), etherTypeVLAN, 0x6000)

	t.Run("check", func(t *testing.T) {
		tbl := oneLAN(*entry(macA, StateReachable))
		lan := &fakeLAN{}
		lan.onSend = func(Frame) {
			lan.inject(foreign)
			lan.inject(priority)
		}
		rep := runCheck(t, tbl, lan, []string{peerIP}, Options{Probe: fastOpts(BroadcastAlways)})
		p := rep.Peers[0]
		if p.Verdict != VerdictOK || p.Owner.String() != macA.String() {
			t.Errorf("verdict %s owner %s (replies %+v); want ok from %s, the other VLAN's %s ignored",
				p.Verdict, p.Owner, p.Replies, macA, macC)
		}
		if d := rep.Stats.Dropped[DropVLAN]; d == 0 {
			t.Errorf("dropped[vlan] = 0; want the tagged replies counted")
		}
	})

	t.Run("ping", func(t *testing.T) {
		lan, cfg := pingLAN()
		cfg.Count, cfg.Timeout = 1, fastOpts(BroadcastAuto).Timeout
		lan.onSend = func(Frame) {
			lan.inject(foreign)
			lan.inject(priority)
		}
		st, err := Ping(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Owners) != 1 || st.Owners[0].MAC.String() != macA.String() {
			t.Errorf("owners %+v; want only %s, the other VLAN's %s ignored", st.Owners, macA, macC)
		}
	})
}

