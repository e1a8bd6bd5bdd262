package arpprobe

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrUnknownInterface is wrapped by the error for an interface name that
// no link has, as in `arpprobe: interface "foo": unknown interface`.
var ErrUnknownInterface = errors.New("unknown interface")

// Resolve decides for each peer, in the order given, where a probe goes,
// from a snapshot of the host's links and routing tables (see
// Topology): the interface and its index, and the source address, which
// is the route's preferred source, else the interface's first IPv4
// address whose subnet holds the peer, else its first IPv4 address, else
// 0.0.0.0.
//
// The route used is the longest matching prefix, the lowest Priority
// among equal prefixes, the first given among equal priorities. A peer
// gets VerdictOfflink and a Reason, and no interface, when it cannot be
// asked directly: no route, a route through a gateway, a route without
// an interface (blackhole), through a loopback or NOARP interface or
// one that is down, an address of this host, or not a unicast address
// (multicast, 0.0.0.0, a broadcast address of this host's subnets).
//
// With iface set, only routes through that interface count, so a peer
// not directly reachable on it is offlink; an iface no link has is an
// error wrapping ErrUnknownInterface.
//
// Resolve is pure: it makes no system call and sends nothing. It costs a
// map per prefix length in use, then a few map lookups per peer.
func Resolve(peers []netip.Addr, links []Link, routes []Route, iface string) ([]Peer, error) {
	hs, err := newHostState(links, iface)
	if err != nil {
		return nil, err
	}
	rt := newRouteTable(routes, hs.only)
	out := make([]Peer, len(peers))
	for i, ip := range peers {
		p := &out[i] // filled in place: a Peer is large
		p.IP = ip.Unmap()
		l, r, why := hs.where(p.IP, rt)
		if why != "" {
			p.Verdict, p.Reason = VerdictOfflink, why
			continue
		}
		p.Interface, p.Ifindex, p.Source = l.Name, l.Index, source(r.Src, l, p.IP)
	}
	return out, nil
}

// PeersFromNeighbors returns a peer for each IPv4 entry of the neighbour
// table (entries in the kernel's order, one peer per address and
// interface), for checking the whole table. It skips entries on loopback
// and NOARP interfaces, on interfaces not in links, and for addresses
// that are not unicast (the kernel keeps NOARP entries for multicast and
// broadcast addresses); it keeps PERMANENT and NOARP entries of unicast
// addresses. With iface set, only entries on that interface count; an
// unknown iface gives no peers.
//
// Each peer's interface is the entry's own and its source address is
// chosen as in Resolve, without a route. An entry on a port of a bridge
// or bond with no IPv4 address of its own is probed through the master
// (Peer.Via, with the master's source). Entries for the host's own
// addresses give one offlink peer per address, never probed. Peer.Cached
// is left for the caller to fill from its snapshot. PeersFromNeighbors is
// pure.
func PeersFromNeighbors(entries []Neighbor, links []Link, iface string) []Peer {
	hs, err := newHostState(links, iface)
	if err != nil {
		return nil
	}
	// Counted first, so that the peers (a Peer is large) take one
	// allocation of their size: grown by append, a call for 4,000
	// entries allocated 3.7 MB, now 1.2 (BenchmarkPeersFromNeighbors).
	// Not len(entries): a table may hold many more IPv6 entries than
	// IPv4 ones.
	n := 0
	for i := range entries {
		if _, _, ok := hs.eligible(&entries[i]); ok {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Peer, 0, n)
	seen := make(map[neighKey]struct{}, n)
	for i := range entries {
		l, ip, ok := hs.eligible(&entries[i])
		if !ok {
			continue
		}
		p := hs.entryPeer(l, ip)
		k := neighKey{p.Ifindex, ip} // 0 for an address of this host: one peer
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, p)
	}
	return out
}

// eligible returns the link and address of entry n if it is one that a
// peer means (see PeersFromNeighbors).
func (hs *hostState) eligible(n *Neighbor) (*Link, netip.Addr, bool) {
	ip := n.IP.Unmap()
	l := hs.byIndex[n.Ifindex]
	if !ip.Is4() || l == nil || l.Loopback || l.NoARP || (hs.only != 0 && l.Index != hs.only) {
		return nil, ip, false
	}
	if notUnicast(ip) != "" || hs.broadcast[ip] != "" {
		return nil, ip, false
	}
	return l, ip, true
}

// entryPeer returns the peer for an entry for ip on l: offlink if ip is
// an address of this host (no probe can tell anything of it, and the
// kernel never sends to it through the entry); else on l, probed through
// l's master if l is a port with no IPv4 address of its own (Peer.Via),
// with the source chosen as in Resolve, without a route.
func (hs *hostState) entryPeer(l *Link, ip netip.Addr) Peer {
	if o := hs.own[ip]; o != nil {
		return Peer{IP: ip, Verdict: VerdictOfflink, Reason: "an address of this host, on " + o.Name}
	}
	p := Peer{IP: ip, Interface: l.Name, Ifindex: l.Index}
	via := l
	if m := hs.byIndex[l.Master]; m != nil && !hasIPv4(l) {
		via, p.Via = m, m.Index
	}
	p.Source = source(netip.Addr{}, via, ip)
	return p
}

// hasIPv4 reports whether l has an IPv4 address.
func hasIPv4(l *Link) bool {
	return slices.ContainsFunc(l.Addrs, func(a netip.Prefix) bool { return a.Addr().Is4() })
}

// hostState is what Resolve and PeersFromNeighbors know of the host's
// interfaces.
type hostState struct {
	byIndex   map[int]*Link
	own       map[netip.Addr]*Link  // this host's IPv4 addresses
	broadcast map[netip.Addr]string // subnet broadcast addresses, with their subnet
	only      int                   // the index of the iface asked for, or 0
}

func newHostState(links []Link, iface string) (*hostState, error) {
	hs := &hostState{
		byIndex:   make(map[int]*Link, len(links)),
		own:       make(map[netip.Addr]*Link),
		broadcast: make(map[netip.Addr]string),
	}
	for i := range links {
		l := &links[i]
		hs.byIndex[l.Index] = l
		if iface != "" && l.Name == iface {
			hs.only = l.Index
		}
		for _, a := range l.Addrs {
			if !a.Addr().Is4() {
				continue
			}
			hs.own[a.Addr()] = l
			if a.Bits() <= 30 { // /31 and /32 have no broadcast address
				hs.broadcast[lastAddr(a.Masked())] = a.Masked().String() + " on " + l.Name
			}
		}
	}
	if iface != "" && hs.only == 0 {
		return nil, fmt.Errorf("arpprobe: interface %q: %w", iface, ErrUnknownInterface)
	}
	return hs, nil
}

// where returns the link and route for probing ip, or why ip cannot be
// probed directly; see Resolve.
func (hs *hostState) where(ip netip.Addr, rt *routeTable) (*Link, Route, string) {
	if !ip.Is4() {
		return nil, Route{}, "not an IPv4 address"
	}
	if why := notUnicast(ip); why != "" {
		return nil, Route{}, why
	}
	if l := hs.own[ip]; l != nil {
		return nil, Route{}, "an address of this host, on " + l.Name
	}
	if subnet := hs.broadcast[ip]; subnet != "" {
		return nil, Route{}, "the broadcast address of " + subnet
	}
	r, ok := rt.lookup(ip)
	if !ok {
		if hs.only != 0 {
			return nil, Route{}, "no route through " + hs.byIndex[hs.only].Name
		}
		return nil, Route{}, "no route"
	}
	l := hs.byIndex[r.Ifindex]
	var why string
	switch {
	case r.Gateway.IsValid():
		why = fmt.Sprintf("reached through gateway %s (route %s)", r.Gateway, r.Dst)
	case l == nil:
		why = fmt.Sprintf("route %s has no interface", r.Dst)
	case l.Loopback:
		why = fmt.Sprintf("route %s is through loopback interface %s", r.Dst, l.Name)
	case l.NoARP:
		why = fmt.Sprintf("route %s is through %s, which does not use ARP", r.Dst, l.Name)
	case !l.Up:
		why = fmt.Sprintf("route %s is through %s, which is down", r.Dst, l.Name)
	}
	return l, r, why
}

// source returns the sender address for probing ip on l: src if valid,
// else l's first IPv4 address whose subnet holds ip, else l's first IPv4
// address, else 0.0.0.0.
func source(src netip.Addr, l *Link, ip netip.Addr) netip.Addr {
	if src = src.Unmap(); src.Is4() {
		return src
	}
	var first netip.Addr
	for _, a := range l.Addrs {
		switch {
		case !a.Addr().Is4():
		case a.Contains(ip):
			return a.Addr()
		case !first.IsValid():
			first = a.Addr()
		}
	}
	if first.IsValid() {
		return first
	}
	return netip.IPv4Unspecified()
}

// samePlace reports whether a and b are the same probe of the same
// address: interface, source, master and any verdict decided already.
func samePlace(a, b Peer) bool {
	return a.IP == b.IP && a.Interface == b.Interface && a.Ifindex == b.Ifindex && a.Source == b.Source &&
		a.Via == b.Via && a.Verdict == b.Verdict && a.Reason == b.Reason
}

// routeTable finds the longest matching IPv4 prefix with one map per
// prefix length in use, tried longest first: at most 33 map lookups per
// address, however many routes there are.
type routeTable struct {
	routes  []Route
	lengths []int              // prefix lengths in use, longest first
	byLen   [33]map[uint32]int // masked destination → index in routes
}

// newRouteTable indexes the valid IPv4 routes, only those through
// interface only if it is not 0. Of routes with the same prefix, the
// lowest Priority wins, then the first given.
func newRouteTable(routes []Route, only int) *routeTable {
	t := &routeTable{routes: routes}
	for i, r := range routes {
		dst := r.Dst.Masked()
		if !dst.IsValid() || !dst.Addr().Is4() || (only != 0 && r.Ifindex != only) {
			continue
		}
		bits := dst.Bits()
		m := t.byLen[bits]
		if m == nil {
			m = make(map[uint32]int)
			t.byLen[bits] = m
			t.lengths = append(t.lengths, bits)
		}
		k := ipKey(dst.Addr())
		if j, ok := m[k]; !ok || r.Priority < routes[j].Priority {
			m[k] = i
		}
	}
	slices.Sort(t.lengths)
	slices.Reverse(t.lengths)
	return t
}

// lookup returns the best route for the IPv4 address a.
func (t *routeTable) lookup(a netip.Addr) (Route, bool) {
	k := ipKey(a)
	for _, bits := range t.lengths {
		mask := ^uint32(0) << (32 - bits) // 0 for bits 0: a shift by 32 clears
		if i, ok := t.byLen[bits][k&mask]; ok {
			return t.routes[i], true
		}
	}
	return Route{}, false
}

// onEveryEntry returns peers (from Resolve) with each peer that the
// neighbour table holds entries for replaced by the peers those entries
// give in whole-table mode (PeersFromNeighbors): one on every interface
// that holds one, in the table's order, with the route's source where
// the route's interface is one of them. A named peer so means the same
// entries as the whole table does, whatever its route says; a peer with
// no entry keeps the interface its route picks, or its offlink verdict.
// onEveryEntry is pure.
func onEveryEntry(peers []Peer, entries []Neighbor, links []Link, iface string) []Peer {
	hs, err := newHostState(links, iface)
	if err != nil {
		return peers
	}
	// The eligible entries of the named addresses, by address, in the
	// table's order: an index sorted stably, not a slice per address, so
	// that 50,000 named peers cost a set and an index, not a second
	// report's worth of Peers.
	named := make(map[netip.Addr]struct{}, len(peers))
	for i := range peers {
		named[peers[i].IP] = struct{}{}
	}
	var held []int32
	for i := range entries {
		if _, ip, ok := hs.eligible(&entries[i]); ok {
			if _, want := named[ip]; want {
				held = append(held, int32(i))
			}
		}
	}
	ipOf := func(i int32) netip.Addr { return entries[i].IP.Unmap() }
	slices.SortStableFunc(held, func(a, b int32) int { return ipOf(a).Compare(ipOf(b)) })
	var out []Peer // nil until a peer differs from what Resolve gave
	var these []Peer
	for pi, p := range peers {
		at, _ := slices.BinarySearchFunc(held, p.IP, func(i int32, ip netip.Addr) int { return ipOf(i).Compare(ip) })
		these = these[:0]
		for ; at < len(held) && ipOf(held[at]) == p.IP; at++ {
			n := &entries[held[at]]
			h := hs.entryPeer(hs.byIndex[n.Ifindex], p.IP)
			if slices.ContainsFunc(these, func(o Peer) bool { return o.Ifindex == h.Ifindex }) {
				continue
			}
			if h.Verdict == "" && h.Ifindex == p.Ifindex && h.Via == 0 && p.Verdict == "" {
				h.Source = p.Source
			}
			these = append(these, h)
		}
		if (len(these) == 0 || len(these) == 1 && samePlace(these[0], p)) && out == nil {
			continue
		}
		if out == nil {
			out = append(make([]Peer, 0, len(peers)+len(these)), peers[:pi]...)
		}
		if len(these) == 0 {
			out = append(out, p)
		} else {
			out = append(out, these...)
		}
	}
	if out == nil {
		return peers
	}
	return out
}
