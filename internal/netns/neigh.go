package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// AddNeigh adds or replaces (ip neigh replace) the IPv4 neighbour entry
// for ip on link, with state (netlink.NUD_STALE, NUD_REACHABLE,
// NUD_PERMANENT ...) and flags (0, or netlink.NTF_EXT_LEARNED). It costs
// one netlink round trip and sends no frame.
//
// Ordinary entries count towards the host-wide gc_thresh limits; seed at
// most a few hundred of them, and use PERMANENT or NTF_EXT_LEARNED
// entries for more.
func (ns *NS) AddNeigh(link string, ip netip.Addr, mac net.HardwareAddr, state, flags int) error {
	idx, err := ns.LinkIndex(link)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{
		LinkIndex:    idx,
		Family:       netlink.FAMILY_V4,
		State:        state,
		Flags:        flags,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	}
	if err := ns.nl.NeighSet(n); err != nil {
		return fmt.Errorf("netns: set neighbour %s lladdr %s dev %s: %w", ip, mac, link, err)
	}
	return nil
}

// Neigh returns the IPv4 neighbour entry for ip on link, or nil and no
// error when there is none. It costs one dump of the link's entries.
func (ns *NS) Neigh(link string, ip netip.Addr) (*netlink.Neigh, error) {
	idx, err := ns.LinkIndex(link)
	if err != nil {
		return nil, err
	}
	list, err := ns.nl.NeighList(idx, netlink.FAMILY_V4)
	for try := 0; try < 3 && errors.Is(err, netlink.ErrDumpInterrupted); try++ {
		list, err = ns.nl.NeighList(idx, netlink.FAMILY_V4) // the table changed during the dump
	}
	if err != nil {
		return nil, fmt.Errorf("netns: list neighbours of %s: %w", link, err)
	}
	for i := range list {
		if a, ok := netip.AddrFromSlice(list[i].IP); ok && a.Unmap() == ip {
			return &list[i], nil
		}
	}
	return nil, nil
}
