package arpprobe_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Check the kernel's entries for two peers and a /30, asking only the
// cached MACs unless they are silent. Needs CAP_NET_RAW.
func ExampleCheck() {
	peers := []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := arpprobe.Check(ctx, peers, arpprobe.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range rep.Peers {
		fmt.Println(p.IP, p.Verdict, p.Owner)
	}
}

// Repair stale entries, deleting the entries of dead peers too. Needs
// CAP_NET_RAW and CAP_NET_ADMIN.
func ExampleCheck_repair() {
	rep, err := arpprobe.Check(context.Background(), nil, arpprobe.Options{
		Repair: &arpprobe.RepairPolicy{DeleteDead: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d stale, %d repaired\n", rep.Summary.Stale, rep.Summary.Repaired)
}

// Classify is pure: the entry cached before probing, and who answered.
func ExampleClassify() {
	cached := &arpprobe.Neighbor{
		IP:    netip.MustParseAddr("198.18.0.2"),
		MAC:   net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa},
		State: arpprobe.StateStale,
	}
	answered := []arpprobe.Reply{{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}, Count: 1}}
	verdict, owner := arpprobe.Classify(cached, answered)
	fmt.Println(verdict, owner)
	verdict, _ = arpprobe.Classify(cached, nil)
	fmt.Println(verdict)
	// Output:
	// stale 02:00:00:00:00:bb
	// dead
}

// A repair plan is data: inspect it before applying it.
func ExamplePlanRepairs() {
	old := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	owner := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
	peers := []arpprobe.Peer{
		{IP: netip.MustParseAddr("198.18.0.2"), Verdict: arpprobe.VerdictStale, Owner: owner,
			Cached: &arpprobe.Neighbor{IP: netip.MustParseAddr("198.18.0.2"), Ifindex: 2, MAC: old, State: arpprobe.StateStale}},
		{IP: netip.MustParseAddr("198.18.0.3"), Verdict: arpprobe.VerdictStale, Owner: owner,
			Cached: &arpprobe.Neighbor{IP: netip.MustParseAddr("198.18.0.3"), Ifindex: 2, MAC: old, State: arpprobe.StatePermanent}},
	}
	for _, c := range arpprobe.PlanRepairs(peers, arpprobe.RepairPolicy{}) {
		fmt.Println("replace", c.New.IP, c.Old.MAC, "->", c.New.MAC, c.New.State)
	}
	fmt.Println(peers[1].IP, peers[1].Action, "-", peers[1].Reason)
	// Output:
	// replace 198.18.0.2 02:00:00:00:00:aa -> 02:00:00:00:00:bb REACHABLE
	// 198.18.0.3 refused - PERMANENT entry; use --include-permanent to change it
}

// ParseFrame reads an ARP reply as it comes off the wire.
func ExampleParseFrame() {
	frame := []byte{
		0x02, 0, 0, 0, 0, 0x01, // destination
		0x02, 0, 0, 0, 0, 0xbb, // source
		0x08, 0x06, // ARP
		0, 1, 0x08, 0, 6, 4, 0, 2, // Ethernet/IPv4, reply
		0x02, 0, 0, 0, 0, 0xbb, 198, 18, 0, 2, // sender
		0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, // target
	}
	f, err := arpprobe.ParseFrame(frame)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s is at %s\n", f.SenderIP, net.HardwareAddr(f.SenderMAC[:]))
	// Output: 198.18.0.2 is at 02:00:00:00:00:bb
}
