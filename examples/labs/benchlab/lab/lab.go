// Package lab builds the benchmark lab of arpcheck in throw-away network
// namespaces: a prober and N peers, each with its own MAC, some dead and
// some stale in the prober's cache. benchlab runs the tools on it; the
// arpprobe benchmarks probe it in-process. It needs root.
package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// The lab, after NOTES.md ("Building many peers on one machine"):
//
//	prober namespace                peers namespace
//	lan0 198.18.0.1/16 ── veth ──── trunk (no address; counters: two AF_PACKET sockets)
//	                                  │
//	                                 br0 (bridge, a static FDB entry per peer)
//	                                  ├─ g0 ── veth ── t0
//	                                  │                 ├─ m0  macvlan, private, its own MAC, 198.18.0.2/32
//	                                  │                 └─ ... up to groupSize macvlans
//	                                  └─ g1 ── veth ── t1 ...
//
// Each live peer is a macvlan of its own in the peers' namespace, so it
// answers with its own MAC from the kernel's own ARP code. A dead peer has
// no macvlan. The prober's cache holds an entry for every peer: the
// owner's MAC (healthy), another MAC (stale) or a MAC nobody has (dead).
//
// The macvlans hang off several lower devices (t0, t1, ...) behind a
// bridge, groupSize each, because adding a macvlan costs the kernel time
// that grows with the number of macvlans already on its lower device
// (perf: macvlan_common_newlink, __netdev_upper_dev_link and the walk of
// the lower device's upper list): one lower device for 50,000 peers took
// minutes to build.
const (
	// ProberIface is the prober's interface, in Lab.Prober.
	ProberIface = "lan0"
	trunkIface  = "trunk"
	bridgeIface = "br0"
	// groupSize is how many macvlans share one lower device.
	groupSize = 2000
	// firstPeerIndex is the interface index the first macvlan asks for;
	// choosing indexes spares a lookup per link. (The few other links
	// get indexes from the kernel, which picks free ones below.)
	firstPeerIndex = 1000
)

var (
	// Prefix is the prober's address and the lab's subnet; the peers
	// have the addresses after the prober's.
	Prefix = netip.MustParsePrefix("198.18.0.1/16")
	// ProberMAC is the MAC of ProberIface.
	ProberMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
)

// MaxPeers is how many peers the lab's /16 has room for.
const MaxPeers = 65000

// Kind is what a peer is: the lab's ground truth.
type Kind uint8

// The kinds of peers.
const (
	Healthy Kind = iota // cached with its owner's MAC: verdict ok
	Stale               // cached with another MAC; the owner answers: stale
	Dead                // cached; nobody has the address: dead
)

var kindVerdicts = [...]string{Healthy: "ok", Stale: "stale", Dead: "dead"}

// Verdict returns the verdict arpcheck must give a peer of this kind.
func (k Kind) Verdict() string { return kindVerdicts[k] }

// Peer is one address of the lab.
type Peer struct {
	IP     netip.Addr
	Kind   Kind
	Owner  net.HardwareAddr // nil for a dead peer
	Cached net.HardwareAddr // what the prober's cache holds
}

// Config says what to build.
type Config struct {
	N           int
	Dead, Stale float64 // percent of N
	// Rewrite turns each broadcast request arriving in the peers'
	// namespace into a unicast to the owner's MAC (an nft rule), and
	// drops broadcasts for addresses nobody owns; see rewriteRules.
	Rewrite bool
	Log     func(format string, args ...any)
}

// Lab is a built lab. Close removes everything.
type Lab struct {
	Config Config
	// Prober is the prober's namespace, with ProberIface.
	Prober *netns.NS
	// PeersNS is the namespace of the peers' macvlans.
	PeersNS *netns.NS
	// Peers are the lab's addresses, in order.
	Peers []Peer
	count *frameCounter
}

// peerMACs: 02:bb:.. owners, 02:cc:.. the wrong MAC a stale entry holds,
// 02:dd:.. the MAC a dead peer's entry holds. The last three bytes are the
// peer's number.
func peerMAC(prefix byte, i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, prefix, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// plan returns the lab's peers: addresses from 198.18.0.2 up, with the
// dead and stale ones spread over the range by a fixed shuffle, so every
// run of the program builds the same lab.
func plan(cfg Config) []Peer {
	nDead := int(float64(cfg.N)*cfg.Dead/100 + 0.5)
	nStale := int(float64(cfg.N)*cfg.Stale/100 + 0.5)
	kinds := make([]Kind, cfg.N)
	for i := range kinds {
		switch {
		case i < nDead:
			kinds[i] = Dead
		case i < nDead+nStale:
			kinds[i] = Stale
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	base := Prefix.Addr().Next()
	peers := make([]Peer, cfg.N)
	a := base
	for i := range peers {
		p := Peer{IP: a, Kind: kinds[i]}
		switch p.Kind {
		case Healthy:
			p.Owner = peerMAC(0xbb, i)
			p.Cached = p.Owner
		case Stale:
			p.Owner = peerMAC(0xbb, i)
			p.Cached = peerMAC(0xcc, i)
		case Dead:
			p.Cached = peerMAC(0xdd, i)
		}
		peers[i] = p
		a = a.Next()
	}
	return peers
}

// Build builds the lab, in about a millisecond a peer. On error nothing
// is left behind; otherwise the caller must Close the lab.
func Build(ctx context.Context, cfg Config) (*Lab, error) {
	if cfg.N < 1 || cfg.N > MaxPeers {
		return nil, fmt.Errorf("lab: %d peers; want 1 to %d", cfg.N, MaxPeers)
	}
	if cfg.Dead < 0 || cfg.Stale < 0 || cfg.Dead+cfg.Stale > 100 {
		return nil, fmt.Errorf("lab: %g%% dead and %g%% stale do not fit in 100%%", cfg.Dead, cfg.Stale)
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	l := &Lab{Config: cfg, Peers: plan(cfg)}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context) error {
	start := time.Now()
	var err error
	if l.Prober, err = netns.New(); err != nil {
		return err
	}
	if l.PeersNS, err = netns.New(); err != nil {
		return err
	}
	pr, ps := l.Prober, l.PeersNS
	// arp_ignore=1: a peer answers only for addresses on the macvlan the
	// request arrived on; arp_announce=2: its requests name that address.
	for _, s := range []string{"all", "default"} {
		if err := ps.Sysctl("net/ipv4/conf/"+s+"/arp_ignore", "1"); err != nil {
			return err
		}
		if err := ps.Sysctl("net/ipv4/conf/"+s+"/arp_announce", "2"); err != nil {
			return err
		}
	}
	// The veth first, up and running, so that each macvlan has a carrier
	// from the start and the kernel activates its queue at once.
	err = firstError(
		func() error { return netns.Veth(pr, ProberIface, ps, trunkIface) },
		func() error { return pr.SetMAC(ProberIface, ProberMAC) },
		func() error { return pr.AddAddr(ProberIface, Prefix) },
		func() error { return ps.Bridge(bridgeIface) },
		func() error { return ps.SetMaster(trunkIface, bridgeIface) },
		func() error { return ps.SetUp(bridgeIface) },
		func() error { return ps.SetUp(trunkIface) },
		func() error { return pr.SetUp(ProberIface) },
		func() error { return pr.WaitUp(ctx, ProberIface) },
		func() error { return ps.WaitUp(ctx, trunkIface) },
	)
	if err != nil {
		return err
	}
	if err := l.addPeers(ctx); err != nil {
		return err
	}
	if err := l.waitPeers(ctx); err != nil {
		return err
	}
	if l.Config.Rewrite {
		if err := l.rewrite(ctx); err != nil {
			return err
		}
	}
	if l.count, err = newFrameCounter(ps, trunkIface); err != nil {
		return err
	}
	l.Config.Log("lab: %d peers (%d dead, %d stale) built in %.1f s",
		len(l.Peers), l.Count(Dead), l.Count(Stale), time.Since(start).Seconds())
	return nil
}

// Count returns how many peers are of kind k.
func (l *Lab) Count(k Kind) int {
	n := 0
	for _, p := range l.Peers {
		if p.Kind == k {
			n++
		}
	}
	return n
}

// addGroup adds group g: a veth pair from a port of the bridge, g<g>, to
// t<g>, the lower device of the group's macvlans, both up and running.
// It returns the indexes of the port and of the lower device.
func (l *Lab) addGroup(ctx context.Context, g int) (port, lower int, err error) {
	ps := l.PeersNS
	portName, lowerName := fmt.Sprintf("g%d", g), fmt.Sprintf("t%d", g)
	err = firstError(
		func() error { return netns.Veth(ps, portName, ps, lowerName) },
		func() error { return ps.SetMaster(portName, bridgeIface) },
		func() error { return ps.SetUp(portName) },
		func() error { return ps.SetUp(lowerName) },
		func() error { return ps.WaitUp(ctx, portName) },
		func() error { return ps.WaitUp(ctx, lowerName) },
	)
	if err != nil {
		return 0, 0, fmt.Errorf("lab: group %d: %w", g, err)
	}
	if port, err = ps.LinkIndex(portName); err != nil {
		return 0, 0, err
	}
	if lower, err = ps.LinkIndex(lowerName); err != nil {
		return 0, 0, err
	}
	return port, lower, nil
}

// addPeers gives every live peer a macvlan with its MAC and address, up,
// with a PERMANENT entry for the prober (so that answering costs the
// peer no ordinary entry, which would count towards the host-wide
// gc_thresh), and a static entry in the bridge's forwarding table, so
// that the bridge never floods a frame for a peer to every group. It
// talks to the kernel through the namespace's netlink handle directly, a
// few round trips a peer.
func (l *Lab) addPeers(ctx context.Context) error {
	h := l.PeersNS.Handle()
	last := time.Now()
	var port, lower int
	for i, p := range l.Peers {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i%groupSize == 0 {
			var err error
			if port, lower, err = l.addGroup(ctx, i/groupSize); err != nil {
				return err
			}
		}
		if p.Owner == nil {
			continue
		}
		m := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{
				Name:         fmt.Sprintf("m%d", i),
				Index:        firstPeerIndex + i,
				ParentIndex:  lower,
				HardwareAddr: p.Owner,
				Flags:        net.FlagUp,
			},
			Mode: netlink.MACVLAN_MODE_PRIVATE,
		}
		if err := h.LinkAdd(m); err != nil {
			return fmt.Errorf("lab: add macvlan for %s: %w", p.IP, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := h.AddrAdd(m, addr); err != nil {
			return fmt.Errorf("lab: address %s: %w", p.IP, err)
		}
		n := &netlink.Neigh{
			LinkIndex:    m.Index,
			Family:       netlink.FAMILY_V4,
			State:        netlink.NUD_PERMANENT,
			IP:           Prefix.Addr().AsSlice(),
			HardwareAddr: ProberMAC,
		}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("lab: %s's entry for the prober: %w", p.IP, err)
		}
		// bridge fdb add <owner> dev g<group> master static
		fdb := &netlink.Neigh{
			LinkIndex:    port,
			Family:       unix.AF_BRIDGE,
			Flags:        netlink.NTF_MASTER,
			State:        netlink.NUD_NOARP,
			HardwareAddr: p.Owner,
		}
		if err := h.NeighSet(fdb); err != nil {
			return fmt.Errorf("lab: bridge entry for %s: %w", p.Owner, err)
		}
		if time.Since(last) > 5*time.Second {
			l.Config.Log("lab: %d of %d peers", i+1, len(l.Peers))
			last = time.Now()
		}
	}
	return nil
}

// waitPeers waits until every macvlan is up and running (see
// netns.NS.WaitUp: until then the kernel drops what it sends), with one
// dump of the links every few milliseconds.
func (l *Lab) waitPeers(ctx context.Context) error {
	want := len(l.Peers) - l.Count(Dead)
	const running = unix.IFF_UP | unix.IFF_RUNNING
	for {
		links, err := l.PeersNS.Handle().LinkList()
		if err != nil {
			return fmt.Errorf("lab: list links: %w", err)
		}
		n := 0
		for _, ln := range links {
			if ln.Type() == "macvlan" && ln.Attrs().RawFlags&running == running {
				n++
			}
		}
		if n == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: %d of %d peers running: %w", n, want, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Seed writes the prober's cache: one entry per peer, STALE with the
// NTF_EXT_LEARNED flag, which behaves like an ordinary entry but does not
// count towards the host-wide gc_thresh limits (NOTES.md). A run heals
// some entries (the kernel learns owners from the replies it sees), so
// the lab seeds again before each measured run.
func (l *Lab) Seed() error {
	h := l.Prober.Handle()
	idx, err := l.Prober.LinkIndex(ProberIface)
	if err != nil {
		return err
	}
	for _, p := range l.Peers {
		n := &netlink.Neigh{
			LinkIndex:    idx,
			Family:       netlink.FAMILY_V4,
			State:        netlink.NUD_STALE,
			Flags:        netlink.NTF_EXT_LEARNED,
			IP:           p.IP.AsSlice(),
			HardwareAddr: p.Cached,
		}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("lab: seed %s: %w", p.IP, err)
		}
	}
	return nil
}

// rewriteRules returns the nft ruleset of the peers' namespace that turns
// each broadcast ARP request into a unicast to the owner's MAC, and drops
// broadcast requests for addresses nobody owns.
//
// Why: macvlan hands every broadcast to every macvlan through a queue of
// 1000 frames (NOTES.md), so in this lab a broadcast costs work that grows
// with N and is dropped when many come at once; on a real LAN a switch
// floods a broadcast in hardware and each host's NIC filters it. With the
// rule, a broadcast costs the lab what it costs one host. Every tool gets
// the same rule; the frame counters see each frame before it.
func (l *Lab) rewriteRules() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table netdev benchlab {\n\tmap owner {\n\t\ttype ipv4_addr : ether_addr\n")
	first := true
	for _, p := range l.Peers {
		if p.Owner == nil {
			continue
		}
		if first {
			b.WriteString("\t\telements = { ")
			first = false
		} else {
			b.WriteString(",\n\t\t\t")
		}
		fmt.Fprintf(&b, "%s : %s", p.IP, p.Owner)
	}
	if !first {
		b.WriteString(" }\n")
	}
	fmt.Fprintf(&b, "\t}\n\tchain ingress {\n\t\ttype filter hook ingress device %q priority 0; policy accept;\n", trunkIface)
	b.WriteString("\t\tether daddr ff:ff:ff:ff:ff:ff arp operation request ether daddr set arp daddr ip map @owner accept\n")
	b.WriteString("\t\tether daddr ff:ff:ff:ff:ff:ff arp operation request drop\n")
	b.WriteString("\t}\n}\n")
	return b.String()
}

// rewrite loads rewriteRules with nft(8) inside the peers' namespace.
func (l *Lab) rewrite(ctx context.Context) error {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return fmt.Errorf("lab: the broadcast rewrite needs nft (apt-get install nftables), or run with -rewrite=false: %w", err)
	}
	f, err := os.CreateTemp("", "benchlab-*.nft")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(l.rewriteRules()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, nft, "-f", f.Name())
	out, err := RunIn(l.PeersNS, cmd)
	if err != nil {
		return fmt.Errorf("lab: nft -f: %w: %s", err, out)
	}
	return nil
}

// RunIn runs cmd to completion inside ns and returns its combined output.
func RunIn(ns *netns.NS, cmd *exec.Cmd) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := StartIn(ns, cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return []byte(out.String()), err
}

// StartIn starts cmd inside ns: the child is forked from a thread that is
// in ns, and a process's namespaces are inherited from the thread that
// forked it.
func StartIn(ns *netns.NS, cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}

// Close removes the lab: closing the namespaces and the counters' sockets
// makes the kernel destroy the namespaces with every link in them.
func (l *Lab) Close() error {
	var errs []error
	if l.count != nil {
		errs = append(errs, l.count.Close())
	}
	for _, ns := range []*netns.NS{l.PeersNS, l.Prober} {
		if ns != nil {
			errs = append(errs, ns.Close())
		}
	}
	return errors.Join(errs...)
}

func firstError(steps ...func() error) error {
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}
