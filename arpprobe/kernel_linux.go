package arpprobe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel is the kernel's IPv4 neighbour (ARP) table, interfaces and main
// routing table, read and written through rtnetlink. It implements
// NeighborTable and Topology. It never sends a frame: reading costs one
// or two netlink dumps per call, writing one request, and only writing
// needs a privilege (CAP_NET_ADMIN).
//
// A Kernel works in the network namespace its netlink socket was created
// in. Its methods are safe for concurrent use, except Close.
type Kernel struct {
	h *netlink.Handle
	// dumps is a second rtnetlink socket in the same namespace, for
	// streaming neighbour dumps (see streamNeighbors); nil for a Kernel
	// from NewKernel, which lists through h.
	dumps *nl.SocketHandle
	// scan is a third, for ScanNeighbors; nil with dumps.
	scan  *neighScanner
	owned bool // Close closes h
}

var (
	_ NeighborTable = (*Kernel)(nil)
	_ Topology      = (*Kernel)(nil)
)

// OpenKernel opens a rtnetlink socket in the calling thread's network
// namespace: the process's own, unless the calling goroutine is locked
// to a thread that entered another. It needs no privilege. The caller
// must Close the Kernel.
func OpenKernel() (*Kernel, error) {
	return OpenKernelAt(netns.None())
}

// OpenKernelAt opens rtnetlink sockets in the network namespace ns, or
// in the calling thread's if ns is netns.None(). It needs no privilege
// beyond what entering ns takes. The caller must Close the Kernel.
func OpenKernelAt(ns netns.NsHandle) (*Kernel, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, kernelError("open rtnetlink socket", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, kernelError("open rtnetlink socket", err)
	}
	scan, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		s.Close()
		return nil, kernelError("open rtnetlink socket", err)
	}
	return &Kernel{h: h, dumps: &nl.SocketHandle{Socket: s}, scan: newNeighScanner(scan), owned: true}, nil
}

// NewKernel returns a Kernel that uses h, such as a handle made with
// netlink.NewHandleAt for another namespace. Close leaves h open.
//
// Such a Kernel lists the neighbour table with h.NeighList, which copies
// each entry several times: about 2.7 KB allocated per entry. For large
// tables prefer OpenKernelAt, which decodes the dump as it arrives.
func NewKernel(h *netlink.Handle) *Kernel { return &Kernel{h: h} }

// Close closes the netlink sockets that OpenKernel or OpenKernelAt opened.
func (k *Kernel) Close() error {
	if k.owned {
		k.h.Close()
		k.dumps.Close()
		k.scan.Close()
	}
	return nil
}

// Neighbors returns every IPv4 neighbour entry, on every interface, in
// the kernel's order, with interface names from a dump of the links: two
// netlink dumps. A dump the kernel reports as interrupted by a change to
// the table is repeated, a few times at most; ctx is checked before each.
// An entry without a link-layer address has a nil MAC. Flags are the
// entry's NTF_* flags (ndm_flags), FlagExternLearned among them.
func (k *Kernel) Neighbors(ctx context.Context) ([]Neighbor, error) {
	links, err := dump(ctx, "list links", k.h.LinkList)
	if err != nil {
		return nil, err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	if k.dumps != nil {
		return dump(ctx, "list neighbours", func() ([]Neighbor, error) {
			return streamNeighbors(k.dumps, names)
		})
	}
	list, err := dump(ctx, "list neighbours", func() ([]netlink.Neigh, error) {
		return k.h.NeighList(0, netlink.FAMILY_V4)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Neighbor, 0, len(list))
	for _, n := range list {
		a, ok := netip.AddrFromSlice(n.IP)
		if a = a.Unmap(); !ok || !a.Is4() {
			continue
		}
		var mac net.HardwareAddr
		if len(n.HardwareAddr) > 0 {
			mac = n.HardwareAddr
		}
		out = append(out, Neighbor{
			IP:        a,
			Ifindex:   n.LinkIndex,
			Interface: names[n.LinkIndex],
			MAC:       mac,
			State:     State(n.State),
			Flags:     Flag(n.Flags),
		})
	}
	return out, nil
}

// ScanNeighbors passes every IPv4 neighbour entry to fn, one netlink dump
// decoded as it arrives, keeping none, so that reading a table where nothing changed
// allocates next to nothing (a Watcher of package watch polls so): the Neighbor
// and its MAC are valid only during the call, and Interface is empty.
// An interrupted dump (the table changed meanwhile) is an error wrapping
// netlink.ErrDumpInterrupted, after fn saw what the dump passed.
func (k *Kernel) ScanNeighbors(ctx context.Context, fn func(*Neighbor)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("arpprobe: scan neighbours: %w", err)
	}
	if k.scan == nil {
		list, err := k.Neighbors(ctx)
		for i := range list {
			fn(&list[i])
		}
		return err
	}
	if err := k.scan.scan(ctx, fn); err != nil {
		return kernelError("scan neighbours", err)
	}
	return nil
}

// SetNeighbor creates or replaces the entry for n.IP on n.Ifindex, like
// `ip neigh replace`, with n.MAC, n.State (which must not be StateNone)
// and, of n.Flags, FlagExternLearned: the other flags describe how the
// kernel or a driver holds an entry and are not written. One netlink
// request; it needs CAP_NET_ADMIN and sends no frame.
func (k *Kernel) SetNeighbor(ctx context.Context, n Neighbor) error {
	nn, err := toNetlink(ctx, "replace", n)
	if err != nil {
		return err
	}
	if n.State == StateNone {
		return fmt.Errorf("arpprobe: replace neighbour %s: no state given", describe(n))
	}
	nn.State = int(n.State)
	nn.Flags = int(n.Flags & FlagExternLearned)
	nn.HardwareAddr = n.MAC
	if err := k.h.NeighSet(nn); err != nil {
		return writeError("replace neighbour "+describe(n), err)
	}
	return nil
}

// DeleteNeighbor deletes the entry for n.IP on n.Ifindex; the other
// fields are ignored. When there is no such entry the error satisfies
// errors.Is(err, os.ErrNotExist). One netlink request; it needs
// CAP_NET_ADMIN and sends no frame.
func (k *Kernel) DeleteNeighbor(ctx context.Context, n Neighbor) error {
	nn, err := toNetlink(ctx, "delete", n)
	if err != nil {
		return err
	}
	if err := k.h.NeighDel(nn); err != nil {
		return writeError("delete neighbour "+describe(n), err)
	}
	return nil
}

// Links returns every interface with its IPv4 addresses, from one dump of
// the links and one of the IPv4 addresses. Up, Loopback and NoARP are the
// interface's IFF_UP, IFF_LOOPBACK and IFF_NOARP flags.
func (k *Kernel) Links(ctx context.Context) ([]Link, error) {
	links, err := dump(ctx, "list links", k.h.LinkList)
	if err != nil {
		return nil, err
	}
	addrs, err := dump(ctx, "list addresses", func() ([]netlink.Addr, error) {
		return k.h.AddrList(nil, netlink.FAMILY_V4)
	})
	if err != nil {
		return nil, err
	}
	byIndex := make(map[int][]netip.Prefix)
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], p)
		}
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		at := l.Attrs()
		var mac net.HardwareAddr
		if len(at.HardwareAddr) > 0 {
			mac = at.HardwareAddr
		}
		out = append(out, Link{
			Index:    at.Index,
			Name:     at.Name,
			MAC:      mac,
			Up:       at.Flags&net.FlagUp != 0,
			Loopback: at.Flags&net.FlagLoopback != 0,
			NoARP:    at.RawFlags&unix.IFF_NOARP != 0,
			Addrs:    byIndex[at.Index],
			Master:   at.MasterIndex,
		})
	}
	return out, nil
}

// Routes returns the IPv4 routes of every routing table but the local
// one (255), from one dump: the main table (254) first, then the others
// in the kernel's order, so that a route in a table chosen by a policy
// rule (ip rule ... lookup 10) or a VRF's table counts, and the main
// table wins among equal prefixes and metrics. Routes of type local,
// broadcast and anycast, which send nowhere but to this host, are left
// out. The default route has Dst 0.0.0.0/0; a directly connected route has
// no Gateway. A multipath route is given by its first hop. A route that
// sends nowhere (blackhole, unreachable, prohibit) has Ifindex 0. A
// gateway given by RTA_VIA (an IPv6 next hop) counts as Gateway.
func (k *Kernel) Routes(ctx context.Context) ([]Route, error) {
	routes, err := dump(ctx, "list routes", func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(routes, func(a, b netlink.Route) int {
		return cmp.Compare(tableRank(a.Table), tableRank(b.Table))
	})
	out := make([]Route, 0, len(routes))
	for _, r := range routes {
		switch {
		case r.Table == unix.RT_TABLE_LOCAL:
			continue
		case r.Type == unix.RTN_LOCAL, r.Type == unix.RTN_BROADCAST, r.Type == unix.RTN_ANYCAST:
			continue
		}
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			p, ok := prefixOf(r.Dst)
			if !ok {
				continue
			}
			dst = p.Masked()
		}
		ifindex, gw, via := r.LinkIndex, r.Gw, r.Via
		if len(r.MultiPath) > 0 {
			ifindex, gw, via = r.MultiPath[0].LinkIndex, r.MultiPath[0].Gw, r.MultiPath[0].Via
		}
		route := Route{Dst: dst, Ifindex: ifindex, Priority: r.Priority, Table: r.Table}
		route.Gateway, _ = netip.AddrFromSlice(gw)
		if v, ok := via.(*netlink.Via); ok && !route.Gateway.IsValid() {
			route.Gateway, _ = netip.AddrFromSlice(v.Addr)
		}
		route.Gateway = route.Gateway.Unmap()
		route.Src, _ = netip.AddrFromSlice(r.Src)
		route.Src = route.Src.Unmap()
		if r.Type != unix.RTN_UNICAST {
			route.Ifindex, route.Gateway = 0, netip.Addr{}
		}
		out = append(out, route)
	}
	return out, nil
}

// tableRank orders routing tables for Routes: the main table first.
func tableRank(table int) int {
	if table == unix.RT_TABLE_MAIN {
		return 0
	}
	return 1
}

// dumpAttempts is how many times a dump interrupted by a change to the
// table (netlink.ErrDumpInterrupted, NLM_F_DUMP_INTR) is tried in all.
const dumpAttempts = 5

// dump runs a netlink dump, again after a short pause if the kernel
// reports it interrupted, and checks ctx before each attempt.
func dump[T any](ctx context.Context, what string, f func() ([]T, error)) ([]T, error) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("arpprobe: %s: %w", what, err)
		}
		list, err := f()
		if err == nil {
			return list, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts {
			return nil, kernelError(what, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * time.Millisecond):
		}
	}
}

// toNetlink checks ctx and n's address and interface, and returns the
// netlink entry that names n.
func toNetlink(ctx context.Context, op string, n Neighbor) (*netlink.Neigh, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("arpprobe: %s neighbour %s: %w", op, describe(n), err)
	}
	ip := n.IP.Unmap()
	if !ip.Is4() || n.Ifindex <= 0 {
		return nil, fmt.Errorf("arpprobe: %s neighbour %s: want an IPv4 address and an interface index", op, describe(n))
	}
	return &netlink.Neigh{LinkIndex: n.Ifindex, Family: netlink.FAMILY_V4, IP: ip.AsSlice()}, nil
}

// describe names an entry in messages: "198.18.0.2 dev eth0", or with the
// index when the name is unknown.
func describe(n Neighbor) string {
	if n.Interface != "" {
		return fmt.Sprintf("%s dev %s", n.IP, n.Interface)
	}
	return fmt.Sprintf("%s ifindex %d", n.IP, n.Ifindex)
}

// kernelError wraps a netlink error with what was being done.
func kernelError(what string, err error) error {
	return fmt.Errorf("arpprobe: %s: %w", what, err)
}

// writeError is kernelError for writes: a permission error names the
// capability that is missing and still satisfies
// errors.Is(err, os.ErrPermission).
func writeError(what string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return &CapabilityError{Capability: "CAP_NET_ADMIN",
			Err: fmt.Errorf("arpprobe: %s: %w (writing the neighbour table needs CAP_NET_ADMIN)", what, err)}
	}
	return kernelError(what, err)
}

// prefixOf converts an IPv4 address with its mask.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if a = a.Unmap(); !ok || !a.Is4() || bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}
