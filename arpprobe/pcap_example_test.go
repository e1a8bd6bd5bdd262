package arpprobe_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Record every frame of a check in check.pcap, for tcpdump -r or tshark.
// Needs CAP_NET_RAW.
func ExamplePcapWriter() {
	f, err := os.Create("check.pcap")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	pw, err := arpprobe.NewPcapWriter(f)
	if err != nil {
		log.Fatal(err)
	}
	k, err := arpprobe.OpenKernel()
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	p := arpprobe.NewProber(arpprobe.ProberConfig{Tap: pw.Tap()})
	c := arpprobe.Checker{Table: k, Topology: k, Prober: p}
	rep, err := c.Check(context.Background(), []netip.Addr{netip.MustParseAddr("198.18.0.2")}, arpprobe.Options{})
	p.Close() // the readers have returned: every frame received is recorded
	if err != nil {
		log.Fatal(err)
	}
	if err := pw.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Peers[0].Verdict, pw.Frames(), "frames recorded")
}

// Record an arping-style ping: the writer wraps the socket Ping opens.
func ExamplePcapWriter_Listener() {
	pw, err := arpprobe.NewPcapWriter(os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	_, err = arpprobe.Ping(context.Background(), arpprobe.PingConfig{
		Target: netip.MustParseAddr("198.18.0.2"),
		Count:  3,
		Listen: pw.Listener(arpprobe.ListenARP),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := pw.Flush(); err != nil {
		log.Fatal(err)
	}
}
