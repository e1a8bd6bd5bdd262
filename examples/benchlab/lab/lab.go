package main

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
//	lan0 198.18.0.1/16 ── veth ──── trunk (no address)
//	                                 ├─ m0  macvlan, private, its own MAC, 198.18.0.2/32
//	                                 ├─ m1  ...
//	                                 └─ counters: two AF_PACKET sockets (requests seen)
//
// Each live peer is a macvlan of its own in the peers' namespace, so it
// answers with its own MAC from the kernel's own ARP code. A dead peer has
// no macvlan. The prober's cache holds an entry for every peer: the
// owner's MAC (healthy), another MAC (stale) or a MAC nobody has (dead).
const (
	proberIface = "lan0"
	trunkIface  = "trunk"
	// firstPeerIndex is the interface index the first macvlan asks for;
	// choosing indexes spares a lookup per link.
	firstPeerIndex = 1000
)

var (
	labPrefix = netip.MustParsePrefix("198.18.0.1/16")
	proberMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
)

// maxPeers is how many addresses the lab's /16 has room for.
const maxPeers = 65000

// kind is what a peer is, the lab's ground truth.
type kind uint8

const (
	healthy kind = iota // cached with its owner's MAC: verdict ok
	stale               // cached with another MAC; the owner answers: stale
	dead                // cached; nobody has the address: dead
)

var kindVerdicts = [...]string{healthy: "ok", stale: "stale", dead: "dead"}

func (k kind) verdict() string { return kindVerdicts[k] }

// peer is one address of the lab.
type peer struct {
	ip     netip.Addr
	kind   kind
	owner  net.HardwareAddr // nil for a dead peer
	cached net.HardwareAddr // what the prober's cache holds
}

// labConfig says what to build.
type labConfig struct {
	N           int
	Dead, Stale float64 // percent of N
	// Rewrite turns each broadcast request arriving in the peers'
	// namespace into a unicast to the owner's MAC (an nft rule), and
	// drops broadcasts for addresses nobody owns; see rewriteRules.
	Rewrite bool
	Log     func(format string, args ...any)
}

// lab is a built lab. Close removes everything.
type lab struct {
	cfg     labConfig
	prober  *netns.NS
	peersNS *netns.NS
	peers   []peer
	count   *frameCounter
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
func plan(cfg labConfig) []peer {
	nDead := int(float64(cfg.N)*cfg.Dead/100 + 0.5)
	nStale := int(float64(cfg.N)*cfg.Stale/100 + 0.5)
	kinds := make([]kind, cfg.N)
	for i := range kinds {
		switch {
		case i < nDead:
			kinds[i] = dead
		case i < nDead+nStale:
			kinds[i] = stale
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	base := labPrefix.Addr().Next()
	peers := make([]peer, cfg.N)
	a := base
	for i := range peers {
		p := peer{ip: a, kind: kinds[i]}
		switch p.kind {
		case healthy:
			p.owner = peerMAC(0xbb, i)
			p.cached = p.owner
		case stale:
			p.owner = peerMAC(0xbb, i)
			p.cached = peerMAC(0xcc, i)
		case dead:
			p.cached = peerMAC(0xdd, i)
		}
		peers[i] = p
		a = a.Next()
	}
	return peers
}

// buildLab builds the lab. On error nothing is left behind; otherwise the
// caller must Close it.
func buildLab(ctx context.Context, cfg labConfig) (*lab, error) {
	if cfg.N < 1 || cfg.N > maxPeers {
		return nil, fmt.Errorf("lab: %d peers; want 1 to %d", cfg.N, maxPeers)
	}
	if cfg.Dead < 0 || cfg.Stale < 0 || cfg.Dead+cfg.Stale > 100 {
		return nil, fmt.Errorf("lab: %g%% dead and %g%% stale do not fit in 100%%", cfg.Dead, cfg.Stale)
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	l := &lab{cfg: cfg, peers: plan(cfg)}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (l *lab) build(ctx context.Context) error {
	start := time.Now()
	var err error
	if l.prober, err = netns.New(); err != nil {
		return err
	}
	if l.peersNS, err = netns.New(); err != nil {
		return err
	}
	pr, ps := l.prober, l.peersNS
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
		func() error { return netns.Veth(pr, proberIface, ps, trunkIface) },
		func() error { return pr.SetMAC(proberIface, proberMAC) },
		func() error { return pr.AddAddr(proberIface, labPrefix) },
		func() error { return ps.SetUp(trunkIface) },
		func() error { return pr.SetUp(proberIface) },
		func() error { return pr.WaitUp(ctx, proberIface) },
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
	if l.cfg.Rewrite {
		if err := l.rewrite(ctx); err != nil {
			return err
		}
	}
	if l.count, err = newFrameCounter(ps, trunkIface); err != nil {
		return err
	}
	l.cfg.Log("lab: %d peers (%d dead, %d stale) built in %.1f s",
		len(l.peers), l.countKind(dead), l.countKind(stale), time.Since(start).Seconds())
	return nil
}

func (l *lab) countKind(k kind) int {
	n := 0
	for _, p := range l.peers {
		if p.kind == k {
			n++
		}
	}
	return n
}

// addPeers gives every live peer a macvlan with its MAC and address, up,
// with a PERMANENT entry for the prober (so that answering costs the
// peer no ordinary entry, which would count towards the host-wide
// gc_thresh). It talks to the kernel through the namespace's netlink
// handle directly, a few round trips a peer.
func (l *lab) addPeers(ctx context.Context) error {
	h := l.peersNS.Handle()
	trunk, err := h.LinkByName(trunkIface)
	if err != nil {
		return fmt.Errorf("lab: %s: %w", trunkIface, err)
	}
	last := time.Now()
	for i, p := range l.peers {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.owner == nil {
			continue
		}
		m := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{
				Name:         fmt.Sprintf("m%d", i),
				Index:        firstPeerIndex + i,
				ParentIndex:  trunk.Attrs().Index,
				HardwareAddr: p.owner,
				Flags:        net.FlagUp,
			},
			Mode: netlink.MACVLAN_MODE_PRIVATE,
		}
		if err := h.LinkAdd(m); err != nil {
			return fmt.Errorf("lab: add macvlan for %s: %w", p.ip, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.ip.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := h.AddrAdd(m, addr); err != nil {
			return fmt.Errorf("lab: address %s: %w", p.ip, err)
		}
		n := &netlink.Neigh{
			LinkIndex:    m.Index,
			Family:       netlink.FAMILY_V4,
			State:        netlink.NUD_PERMANENT,
			IP:           labPrefix.Addr().AsSlice(),
			HardwareAddr: proberMAC,
		}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("lab: %s's entry for the prober: %w", p.ip, err)
		}
		if time.Since(last) > 5*time.Second {
			l.cfg.Log("lab: %d of %d peers", i+1, len(l.peers))
			last = time.Now()
		}
	}
	return nil
}

// waitPeers waits until every macvlan is up and running (see
// netns.NS.WaitUp: until then the kernel drops what it sends), with one
// dump of the links every few milliseconds.
func (l *lab) waitPeers(ctx context.Context) error {
	want := len(l.peers) - l.countKind(dead)
	const running = unix.IFF_UP | unix.IFF_RUNNING
	for {
		links, err := l.peersNS.Handle().LinkList()
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

// seed writes the prober's cache: one entry per peer, STALE with the
// NTF_EXT_LEARNED flag, which behaves like an ordinary entry but does not
// count towards the host-wide gc_thresh limits (NOTES.md). A run heals
// some entries (the kernel learns owners from the replies it sees), so
// the lab seeds again before each measured run.
func (l *lab) seed() error {
	h := l.prober.Handle()
	idx, err := l.prober.LinkIndex(proberIface)
	if err != nil {
		return err
	}
	for _, p := range l.peers {
		n := &netlink.Neigh{
			LinkIndex:    idx,
			Family:       netlink.FAMILY_V4,
			State:        netlink.NUD_STALE,
			Flags:        netlink.NTF_EXT_LEARNED,
			IP:           p.ip.AsSlice(),
			HardwareAddr: p.cached,
		}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("lab: seed %s: %w", p.ip, err)
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
func (l *lab) rewriteRules() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table netdev benchlab {\n\tmap owner {\n\t\ttype ipv4_addr : ether_addr\n")
	first := true
	for _, p := range l.peers {
		if p.owner == nil {
			continue
		}
		if first {
			b.WriteString("\t\telements = { ")
			first = false
		} else {
			b.WriteString(",\n\t\t\t")
		}
		fmt.Fprintf(&b, "%s : %s", p.ip, p.owner)
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
func (l *lab) rewrite(ctx context.Context) error {
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
	out, err := runIn(l.peersNS, cmd)
	if err != nil {
		return fmt.Errorf("lab: nft -f: %w: %s", err, out)
	}
	return nil
}

// runIn runs cmd to completion inside ns and returns its combined output.
func runIn(ns *netns.NS, cmd *exec.Cmd) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := startIn(ns, cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return []byte(out.String()), err
}

// startIn starts cmd inside ns: the child is forked from a thread that is
// in ns, and a process's namespaces are inherited from the thread that
// forked it.
func startIn(ns *netns.NS, cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}

// Close removes the lab: closing the namespaces and the counters' sockets
// makes the kernel destroy the namespaces with every link in them.
func (l *lab) Close() error {
	var errs []error
	if l.count != nil {
		errs = append(errs, l.count.Close())
	}
	for _, ns := range []*netns.NS{l.peersNS, l.prober} {
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
