package fake

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Table is an arpprobe.NeighborTable and Topology in memory.
type Table struct {
	mu      sync.Mutex
	entries []arpprobe.Neighbor
	links   []arpprobe.Link
	routes  []arpprobe.Route
	writes  []string
	reads   int
}

// OneLAN returns a table of one interface, index 2, "fake2", MAC
// 02:00:00:00:ff:02 (as LAN.Config names it), 198.18.0.1/24, holding
// entries on it.
func OneLAN(entries ...arpprobe.Neighbor) *Table {
	return Subnet(netip.MustParsePrefix("198.18.0.1/24"), entries...)
}

// Subnet is OneLAN with the interface's address and prefix length addr.
func Subnet(addr netip.Prefix, entries ...arpprobe.Neighbor) *Table {
	for i := range entries {
		entries[i].Ifindex, entries[i].Interface = 2, "fake2"
	}
	return &Table{
		entries: entries,
		links: []arpprobe.Link{{Index: 2, Name: "fake2", MAC: net.HardwareAddr{2, 0, 0, 0, 0xff, 2}, Up: true,
			Addrs: []netip.Prefix{addr}}},
		routes: []arpprobe.Route{{Dst: addr.Masked(), Ifindex: 2, Src: addr.Addr()}},
	}
}

// Neighbors returns a copy of the entries.
func (t *Table) Neighbors(ctx context.Context) ([]arpprobe.Neighbor, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reads++
	out := make([]arpprobe.Neighbor, len(t.entries))
	for i, e := range t.entries {
		e.MAC = slices.Clone(e.MAC)
		out[i] = e
	}
	return out, nil
}

// Scan passes every entry to fn, as a read that keeps none, and counts
// a read.
func (t *Table) Scan(fn func(*arpprobe.Neighbor)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reads++
	for i := range t.entries {
		fn(&t.entries[i])
	}
}

// Set replaces the entry of n's interface and address, or adds n.
func (t *Table) Set(n arpprobe.Neighbor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.set(n)
}

func (t *Table) set(n arpprobe.Neighbor) {
	for i := range t.entries {
		if t.entries[i].IP == n.IP && t.entries[i].Ifindex == n.Ifindex {
			t.entries[i] = n
			return
		}
	}
	t.entries = append(t.entries, n)
}

// Delete removes every entry for ip.
func (t *Table) Delete(ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = slices.DeleteFunc(t.entries, func(e arpprobe.Neighbor) bool { return e.IP == ip })
}

// SetNeighbor writes n and records the write ("set 198.18.0.2 02:.. REACHABLE").
func (t *Table) SetNeighbor(ctx context.Context, n arpprobe.Neighbor) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes = append(t.writes, "set "+n.IP.String()+" "+n.MAC.String()+" "+n.State.String())
	t.set(n)
	return nil
}

// DeleteNeighbor deletes n's entry and records the write ("del 198.18.0.3").
func (t *Table) DeleteNeighbor(ctx context.Context, n arpprobe.Neighbor) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes = append(t.writes, "del "+n.IP.String())
	t.entries = slices.DeleteFunc(t.entries, func(e arpprobe.Neighbor) bool { return e.IP == n.IP && e.Ifindex == n.Ifindex })
	return nil
}

// Writes returns the writes made through SetNeighbor and DeleteNeighbor.
func (t *Table) Writes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.writes)
}

// Reads returns how many times the table was read (Neighbors or Scan).
func (t *Table) Reads() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reads
}

// Links returns the table's interface.
func (t *Table) Links(ctx context.Context) ([]arpprobe.Link, error) { return t.links, nil }

// Routes returns the route of the table's subnet.
func (t *Table) Routes(ctx context.Context) ([]arpprobe.Route, error) { return t.routes, nil }
