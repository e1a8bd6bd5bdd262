package arpprobe

import (
	"context"
	"net"
	"net/netip"
	"strings"
)

// State is a kernel neighbour (NUD) state: a bit set as in
// include/uapi/linux/neighbour.h, normally with one bit set.
type State uint16

// The kernel's NUD states.
const (
	StateNone       State = 0x00
	StateIncomplete State = 0x01
	StateReachable  State = 0x02
	StateStale      State = 0x04
	StateDelay      State = 0x08
	StateProbe      State = 0x10
	StateFailed     State = 0x20
	StateNoARP      State = 0x40
	StatePermanent  State = 0x80
)

var stateNames = [...]struct {
	s    State
	name string
}{
	{StateIncomplete, "INCOMPLETE"}, {StateReachable, "REACHABLE"}, {StateStale, "STALE"},
	{StateDelay, "DELAY"}, {StateProbe, "PROBE"}, {StateFailed, "FAILED"},
	{StateNoARP, "NOARP"}, {StatePermanent, "PERMANENT"},
}

// String returns the state as ip-neighbour(8) prints it, e.g. "STALE";
// several bits are joined with "|"; no bit is "NONE".
func (s State) String() string {
	if s == StateNone {
		return "NONE"
	}
	var names []string
	for _, n := range stateNames {
		if s&n.s != 0 {
			names = append(names, n.name)
			s &^= n.s
		}
	}
	if s != 0 {
		names = append(names, "0x"+hex16(uint16(s)))
	}
	return strings.Join(names, "|")
}

func hex16(v uint16) string {
	const digits = "0123456789abcdef"
	b := []byte{digits[v>>12&0xf], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf]}
	return strings.TrimLeft(string(b), "0")
}

// Static reports whether the kernel never revalidates an entry in this
// state (PERMANENT or NOARP): a wrong static entry never heals by itself.
func (s State) Static() bool { return s&(StatePermanent|StateNoARP) != 0 }

// Flag is a neighbour entry flag (NTF_*), as in include/uapi/linux/neighbour.h.
type Flag uint32

// The flags arpprobe looks at.
const (
	// FlagExternLearned (NTF_EXT_LEARNED) marks an entry learned or set
	// from outside the kernel's ARP code; such entries are not garbage
	// collected and do not count towards gc_thresh. A repair keeps it.
	FlagExternLearned Flag = 0x10
)

// Neighbor is one IPv4 entry of the kernel's neighbour table.
type Neighbor struct {
	IP        netip.Addr
	Ifindex   int
	Interface string           // interface name; may be empty when unknown
	MAC       net.HardwareAddr // nil when the entry has no link-layer address
	State     State
	Flags     Flag
}

// Usable reports whether the entry names a MAC the kernel would send to:
// it has an address and is not INCOMPLETE, FAILED or NONE.
func (n *Neighbor) Usable() bool {
	if n == nil || len(n.MAC) != 6 {
		return false
	}
	return n.State&^(StateIncomplete|StateFailed) != 0
}

// NeighborTable is the kernel's IPv4 neighbour (ARP) table. The netlink
// implementation is Kernel; tests use fakes.
type NeighborTable interface {
	// Neighbors returns every IPv4 entry, on every interface.
	Neighbors(ctx context.Context) ([]Neighbor, error)
	// SetNeighbor creates or replaces an entry (ip neigh replace).
	SetNeighbor(ctx context.Context, n Neighbor) error
	// DeleteNeighbor deletes the entry for n.IP on n.Ifindex.
	DeleteNeighbor(ctx context.Context, n Neighbor) error
}

// Link is a network interface as the prober needs to know it.
type Link struct {
	Index    int
	Name     string
	MAC      net.HardwareAddr
	Up       bool // administratively up (IFF_UP)
	Loopback bool // IFF_LOOPBACK
	NoARP    bool // IFF_NOARP: the interface does not use ARP
	// Addrs are the interface's IPv4 addresses with their prefix lengths.
	Addrs []netip.Prefix
	// Master is the index of the bridge or bond the interface is a port
	// of, 0 if none. IPv4 runs on the master, so an entry a port holds
	// is probed through it (see Peer.Via).
	Master int
}

// Route is one IPv4 route, of the main routing table or of any other
// (a table that a policy rule or a VRF uses).
type Route struct {
	Dst      netip.Prefix // 0.0.0.0/0 for the default route
	Ifindex  int
	Gateway  netip.Addr // invalid (zero) for a directly connected route
	Src      netip.Addr // preferred source; may be invalid
	Priority int        // metric; lower wins among equal prefixes
	Table    int        // routing table id (254 main); 0 when unknown
}

// Topology describes the host's interfaces and routes. The netlink
// implementation is Kernel; tests use fakes.
type Topology interface {
	Links(ctx context.Context) ([]Link, error)
	Routes(ctx context.Context) ([]Route, error)
}
