package arpprobe

import (
	"bytes"
	"context"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/vishvananda/netlink"
)

var recordPcaps = flag.Bool("record-pcaps", false, "TestRecordPcaps writes its captures to ../testdata/pcaps")

// TestRecordPcaps records the captures of replay_test.go's scenarios on a
// namespace LAN, checks that the live run and the replay of what it
// recorded both give the scenario's verdicts, and with -record-pcaps
// writes them (and the crafted ones) to pcapDir:
//
//	go test -run TestRecordPcaps -record-pcaps ./arpprobe
//
// The LAN: the prober (lan0, 198.18.0.1/24) and hosts numbered as
// netns.HostMAC numbers them:
//
//	1  198.18.0.2
//	2  198.18.0.3   the recycled address's new owner
//	3  198.18.0.5   a conflict,
//	4  198.18.0.5   with this one
//	5  198.18.0.6   uncached
//	6  198.18.0.7   its kernel is silent; a responder pads its replies
//
// Captures are the prober's own: a PcapWriter on the Prober's tap. The
// test kernel has no 802.1Q support (CONFIG_VLAN_8021Q), so the VLAN
// capture is crafted, like the malformed one.
func TestRecordPcaps(t *testing.T) {
	lan := netns.NewLANT(t, netip.MustParsePrefix("198.18.0.1/24"),
		netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.5"),
		netip.MustParseAddr("198.18.0.5"), netip.MustParseAddr("198.18.0.6"), netip.MustParseAddr("198.18.0.7"))
	if err := lan.Hosts[5].NS.Sysctl("net/ipv4/conf/"+netns.HostIface+"/arp_ignore", "8"); err != nil {
		t.Fatal(err)
	}
	startPaddingResponder(t, lan.Hosts[5].NS, netip.MustParseAddr("198.18.0.7"))

	dir := t.TempDir()
	if *recordPcaps {
		dir = pcapDir
		for name, craft := range craftedPcaps {
			if err := os.WriteFile(filepath.Join(dir, name+".pcap"), craftedPcap(t, craft()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range replayScenarios {
		sc := &replayScenarios[i]
		if craftedPcaps[sc.name] != nil {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			capture := recordScenario(t, lan, sc)
			path := filepath.Join(dir, sc.name+".pcap")
			if err := os.WriteFile(path, capture, 0o644); err != nil {
				t.Fatal(err)
			}
			rep, strange := replay(t, sc, readPcapFile(t, path))
			checkReplay(t, sc, rep, strange)
		})
	}
}

// recordScenario seeds the prober's table as the scenario says, runs its
// check on the LAN, checks the live verdicts and returns the capture.
func recordScenario(t *testing.T, lan *netns.LAN, sc *replayScenario) []byte {
	t.Helper()
	link := sc.iface()
	ifindex, err := lan.Prober.LinkIndex(link.Name)
	if err != nil {
		t.Fatal(err)
	}
	var peers []netip.Addr
	for _, p := range sc.peers {
		ip := netip.MustParseAddr(p.ip)
		peers = append(peers, ip)
		// Start from the scenario's entry, or from none.
		lan.Prober.Handle().NeighDel(&netlink.Neigh{LinkIndex: ifindex, Family: netlink.FAMILY_V4, IP: ip.AsSlice()})
		if p.cached != nil {
			if err := lan.Prober.AddNeigh(link.Name, ip, p.cached, int(p.state), 0); err != nil {
				t.Fatal(err)
			}
		}
	}

	var buf bytes.Buffer
	pw, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ProberConfig{Tap: pw.Tap()}
	var rep *Report
	err = lan.Prober.Do(func() error {
		k := NewKernel(lan.Prober.Handle())
		p := NewProber(cfg)
		defer p.Close()
		c := Checker{Table: k, Topology: k, Prober: p}
		var err error
		rep, err = c.Check(context.Background(), peers, Options{Probe: sc.probe})
		return err
	})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for i, want := range sc.peers {
		p := rep.Peers[i]
		if p.Verdict != want.verdict || p.Owner.String() != want.owner.String() || len(p.Replies) != want.macs {
			t.Errorf("live run: %s: verdict %s owner %q, %d MACs (reason %q); want %s owner %q, %d MACs",
				p.IP, p.Verdict, p.Owner, len(p.Replies), p.Reason, want.verdict, want.owner, want.macs)
		}
	}
	if err := pw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// startPaddingResponder answers, from inside ns, every ARP request for
// ip on HostIface with a reply padded to 60 bytes plus a 4-byte trailer,
// as many NICs send them. It stops when the test ends.
func startPaddingResponder(t *testing.T, ns *netns.NS, ip netip.Addr) {
	t.Helper()
	mac, err := ns.LinkMAC(netns.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	var c FrameConn
	err = ns.Do(func() error {
		ifi, err := net.InterfaceByName(netns.HostIface)
		if err != nil {
			return err
		}
		c, err = ListenConfig{Requests: true}.Listen(ifi)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { c.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, maxFrameBuffer)
		for {
			n, err := c.ReadFrame(buf)
			if err != nil {
				return
			}
			f, err := ParseFrame(buf[:n])
			if err != nil || f.Op != opRequest || f.TargetIP != ip {
				continue
			}
			r := replyFrame(mac, ip, f.SenderMAC[:], f.SenderIP)
			r = append(r, make([]byte, 60-len(r))...)
			r = append(r, 0xde, 0xad, 0xbe, 0xef)
			c.WriteFrame(r)
		}
	})
}
