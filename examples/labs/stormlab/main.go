// Command stormlab measures arpcheck in an ARP storm: hosts of a namespace
// LAN flood the prober with ARP replies addressed to it while `arpcheck
// verify` checks four peers (ok, stale, uncached, dead), and, on the same
// storm, `tcpdump -w /dev/null arp` captures for as long. For each storm
// rate it prints a markdown row: the frames per second that reached the
// prober's interface, the frames the kernel dropped for arpcheck and for
// tcpdump (min–max over the runs), and in how many runs every verdict of
// arpcheck was exact.
//
//	sudo go run ./examples/labs/stormlab                       # rates 50k, 200k, 400k a second and full speed, 5 runs each
//	sudo go run ./examples/labs/stormlab -rates 0 -runs 10     # full speed only
//
// The storm, as a broken or hostile LAN sends it: every frame a 64-byte
// ARP reply to the prober; a quarter are replies about addresses nobody
// asked about from the flooder's own MAC, the rest claim the checked
// peers' addresses from a broadcast, zero or multicast sender MAC. Each
// flooder host sends with sendmmsg(2) in batches of 64, paced to its share
// of the rate, or as fast as it can (rate 0).
//
// It needs root, tcpdump, and builds arpcheck as released
// (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w') unless -arpcheck
// names a binary. Frames go only between the namespaces it makes, which
// go when it ends.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/examples/labs/internal/release"
	"github.com/arpcheck/arpcheck/internal/flood"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// The LAN: the prober .1, the owners of the checked addresses, and the
// flooders.
var (
	prefix    = netip.MustParsePrefix("198.18.0.1/24")
	okIP      = netip.MustParseAddr("198.18.0.2") // cached, answers: ok
	staleIP   = netip.MustParseAddr("198.18.0.3") // cached with a MAC nobody has; another host owns it: stale
	uncacheIP = netip.MustParseAddr("198.18.0.4") // not cached, answers: uncached
	deadIP    = netip.MustParseAddr("198.18.0.5") // cached, nobody: dead
	floodIPs  = []netip.Addr{netip.MustParseAddr("198.18.0.250"), netip.MustParseAddr("198.18.0.251")}
	goneMAC   = net.HardwareAddr{0x02, 0xde, 0xad, 0, 0, 1}
	truth     = map[string]string{okIP.String(): "ok", staleIP.String(): "stale", uncacheIP.String(): "uncached", deadIP.String(): "dead"}
)

type options struct {
	rates    []int
	runs     int
	arpcheck string
	hold     time.Duration
}

func main() {
	var o options
	rates := flag.String("rates", "50000,200000,400000,0", "storm rates to measure, frames a second all flooders together, comma-separated; 0 is as fast as they can")
	flag.IntVar(&o.runs, "runs", 5, "runs at each rate")
	flag.StringVar(&o.arpcheck, "arpcheck", "", "arpcheck binary (default: built from ./cmd/arpcheck as released)")
	flag.Parse()
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 0 {
			fmt.Fprintf(os.Stderr, "stormlab: bad rate %q\n", f)
			os.Exit(2)
		}
		o.rates = append(o.rates, r)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "stormlab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	if o.arpcheck == "" {
		dir, err := os.MkdirTemp("", "stormlab")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.arpcheck = filepath.Join(dir, "arpcheck")
		if err := release.Build(ctx, o.arpcheck, os.Stderr); err != nil {
			return err
		}
	}
	lan, err := netns.NewLAN(ctx, prefix)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lan.Close()) }()
	var floodMACs []net.HardwareAddr
	for _, a := range append([]netip.Addr{okIP, staleIP, uncacheIP}, floodIPs...) {
		h, err := lan.AddHost(ctx, a)
		if err != nil {
			return err
		}
		if slices.Contains(floodIPs, a) {
			mac, err := h.MAC()
			if err != nil {
				return err
			}
			floodMACs = append(floodMACs, mac)
		}
	}
	// The prober's kernel would believe the storm's claims once an
	// entry's locktime has passed; raise it, so that every entry stays
	// as seeded and each run checks the same table.
	if err := lan.Prober.Sysctl("net/ipv4/neigh/"+netns.LANIface+"/locktime", "100000"); err != nil {
		return err
	}
	fmt.Printf("| storm asked, frames/s | reached lan0, frames/s | arpcheck: kernel drops | tcpdump: kernel drops | arpcheck exact |\n")
	fmt.Printf("|---|---|---|---|---|\n")
	for _, rate := range o.rates {
		var offered []float64
		var ours, theirs []uint64
		exact := 0
		for range o.runs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := seed(lan); err != nil {
				return err
			}
			m, err := measure(ctx, lan, o.arpcheck, floodMACs, rate)
			if err != nil {
				return err
			}
			offered = append(offered, m.offered)
			ours, theirs = append(ours, m.ours), append(theirs, m.theirs)
			if m.exact {
				exact++
			} else {
				fmt.Fprintf(os.Stderr, "rate %d: verdicts %v\n", rate, m.verdicts)
			}
		}
		asked := "full speed"
		if rate > 0 {
			asked = fmt.Sprintf("%d", rate)
		}
		fmt.Printf("| %s | %s | %s | %s | %d of %d |\n", asked, spanF(offered), spanU(ours), spanU(theirs), exact, o.runs)
	}
	return nil
}

// seed sets the prober's entries: the owner's MAC for ok, a MAC nobody
// has for stale and dead, none for uncached.
func seed(lan *netns.LAN) error {
	okMAC, err := lan.Hosts[0].MAC()
	if err != nil {
		return err
	}
	for ip, mac := range map[netip.Addr]net.HardwareAddr{okIP: okMAC, staleIP: goneMAC, deadIP: goneMAC} {
		if err := lan.Prober.AddNeigh(netns.LANIface, ip, mac, netlink.NUD_STALE, 0); err != nil {
			return err
		}
	}
	return nil
}

// stormFrames returns the frames a flooder with MAC mac sends to the
// prober: per round, one reply about an address nobody asked about from
// mac, and three claims of the checked addresses from MACs no host has.
func stormFrames(mac, prober net.HardwareAddr) [][]byte {
	bogus := []net.HardwareAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0, 0, 0}, {0x01, 0x00, 0x5e, 0, 0, 1}}
	var out [][]byte
	for i, ip := range []netip.Addr{okIP, staleIP, uncacheIP, deadIP} {
		out = append(out, reply(prober, mac, mac, netip.AddrFrom4([4]byte{198, 18, 0, byte(200 + i)})))
		for _, b := range bogus {
			out = append(out, reply(prober, mac, b, ip))
		}
	}
	return out
}

// reply returns a 64-byte ARP reply on the wire from src to dst, in which
// sha claims sip for the prober.
func reply(dst, src, sha net.HardwareAddr, sip netip.Addr) []byte {
	b := make([]byte, 64)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	b[12], b[13] = 0x08, 0x06
	copy(b[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 2})
	copy(b[22:28], sha)
	s := sip.As4()
	copy(b[28:32], s[:])
	copy(b[32:38], dst)
	p := prefix.Addr().As4()
	copy(b[38:42], p[:])
	return b
}

// result is one run at one rate.
type result struct {
	offered     float64 // frames a second that reached lan0
	ours        uint64  // kernel drops for arpcheck
	theirs      uint64  // kernel drops for tcpdump
	exact       bool
	verdicts    map[string]string
	arpcheckDur time.Duration
}

// measure starts the storm, runs arpcheck in it, then tcpdump for as
// long, and stops the storm.
func measure(ctx context.Context, lan *netns.LAN, arpcheck string, floodMACs []net.HardwareAddr, rate int) (result, error) {
	var res result
	proberMAC, err := lan.Prober.LinkMAC(netns.LANIface)
	if err != nil {
		return res, err
	}
	var flooders []*flood.Flooder
	defer func() {
		for _, f := range flooders {
			f.Stop()
		}
	}()
	for i, mac := range floodMACs {
		f, err := flood.Start(lan.Hosts[3+i].NS.Do, netns.HostIface, stormFrames(mac, proberMAC), rate/len(floodMACs))
		if err != nil {
			return res, err
		}
		flooders = append(flooders, f)
	}
	time.Sleep(200 * time.Millisecond) // the storm is on
	rx0, err := rxPackets(lan.Prober)
	if err != nil {
		return res, err
	}
	t0 := time.Now()

	// arpcheck, as a cron job runs it.
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, arpcheck, "verify", "--format", "json",
		okIP.String(), staleIP.String(), uncacheIP.String(), deadIP.String())
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := lan.Prober.Do(cmd.Start); err != nil {
		return res, err
	}
	cmd.Wait() // exit 2: a stale peer
	res.arpcheckDur = time.Since(start)
	var rep struct {
		Peers []struct {
			IP      string `json:"ip"`
			Verdict string `json:"verdict"`
		} `json:"peers"`
		Stats struct {
			Dropped map[string]uint64 `json:"dropped"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return res, fmt.Errorf("arpcheck's report: %w (stderr: %s)", err, errOut.String())
	}
	res.ours = rep.Stats.Dropped["kernel"]
	res.verdicts = map[string]string{}
	for _, p := range rep.Peers {
		res.verdicts[p.IP] = p.Verdict
	}
	res.exact = len(res.verdicts) == len(truth)
	for ip, v := range truth {
		res.exact = res.exact && res.verdicts[ip] == v
	}

	// tcpdump on the same storm, for as long.
	errOut.Reset()
	td := exec.CommandContext(ctx, "tcpdump", "-i", netns.LANIface, "-w", "/dev/null", "-n", "arp")
	td.Stderr = &errOut
	if err := lan.Prober.Do(td.Start); err != nil {
		return res, fmt.Errorf("tcpdump: %w", err)
	}
	time.Sleep(max(res.arpcheckDur, time.Second))
	td.Process.Signal(os.Interrupt)
	td.Wait()
	m := regexp.MustCompile(`(\d+) packets? dropped by kernel`).FindStringSubmatch(errOut.String())
	if m == nil {
		return res, fmt.Errorf("tcpdump said no drop count: %s", errOut.String())
	}
	res.theirs, _ = strconv.ParseUint(m[1], 10, 64)

	rx1, err := rxPackets(lan.Prober)
	if err != nil {
		return res, err
	}
	res.offered = float64(rx1-rx0) / time.Since(t0).Seconds()
	for _, f := range flooders {
		if _, _, err := f.Stop(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// rxPackets returns the frames the prober's interface received.
func rxPackets(ns *netns.NS) (uint64, error) {
	l, err := ns.Handle().LinkByName(netns.LANIface)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Statistics.RxPackets, nil
}

func spanU(v []uint64) string {
	return fmt.Sprintf("%d–%d", slices.Min(v), slices.Max(v))
}

func spanF(v []float64) string {
	return fmt.Sprintf("%.0f–%.0f", slices.Min(v), slices.Max(v))
}
