package arpprobe

import (
	"encoding/binary"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The streaming neighbour dump. netlink.Handle.NeighList keeps every
// message of a dump, then decodes each into a netlink.Neigh and copies it
// into a growing slice: about 2.7 KB allocated per entry, 137 MB for a
// table of 50,000 (go tool pprof -sample_index=alloc_space). Here each
// message is decoded as it arrives, straight into a Neighbor, with the
// MACs carved from shared blocks.

// streamNeighbors dumps the IPv4 neighbour table through sock and returns
// the entries, naming interfaces from names. It returns
// netlink.ErrDumpInterrupted, with no entries, if the kernel reports the
// table changed during the dump.
func streamNeighbors(sock *nl.SocketHandle, names map[int]string) ([]Neighbor, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sock}
	req.AddData(&netlink.Ndmsg{Family: unix.AF_INET})
	// Entries go into blocks of a fixed size, then into one slice of the
	// right length: growing one slice by appending would copy a large
	// table over and over.
	var (
		blocks [][]Neighbor
		last   []Neighbor
		total  int
		macs   macBlocks
	)
	err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH, func(m []byte) bool {
		n, ok := parseNeighMsg(m, &macs)
		if !ok {
			return true
		}
		n.Interface = names[n.Ifindex]
		if len(last) == cap(last) {
			if last != nil {
				blocks = append(blocks, last)
			}
			last = make([]Neighbor, 0, neighBlockSize)
		}
		last = append(last, n)
		total++
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]Neighbor, 0, total)
	for _, b := range append(blocks, last) {
		out = append(out, b...)
	}
	return out, nil
}

// neighBlockSize is how many entries streamNeighbors collects in a block.
const neighBlockSize = 1024

// parseNeighMsg decodes one RTM_NEWNEIGH message body: struct ndmsg
// (rtnetlink(7)) and its attributes. It reports false for anything but an
// IPv4 entry with a 4-byte NDA_DST, and for a malformed message. The MAC,
// if the entry has one (NDA_LLADDR), is copied into macs, or with nil
// macs is a slice of m.
func parseNeighMsg(m []byte, macs *macBlocks) (Neighbor, bool) {
	if len(m) < unix.SizeofNdMsg || m[0] != unix.AF_INET {
		return Neighbor{}, false
	}
	ne := binary.NativeEndian
	n := Neighbor{
		Ifindex: int(int32(ne.Uint32(m[4:8]))),
		State:   State(ne.Uint16(m[8:10])),
		Flags:   Flag(m[10]),
	}
	var haveIP bool
	for a := m[unix.SizeofNdMsg:]; len(a) >= unix.SizeofRtAttr; {
		l := int(ne.Uint16(a[0:2]))
		if l < unix.SizeofRtAttr || l > len(a) {
			return Neighbor{}, false
		}
		data := a[unix.SizeofRtAttr:l]
		switch ne.Uint16(a[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER) {
		case unix.NDA_DST:
			if len(data) != 4 {
				return Neighbor{}, false
			}
			n.IP = netip.AddrFrom4([4]byte(data))
			haveIP = true
		case unix.NDA_LLADDR:
			switch {
			case len(data) == 0:
			case macs == nil:
				n.MAC = data
			default:
				n.MAC = macs.copy(data)
			}
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next >= len(a) {
			break
		}
		a = a[next:]
	}
	return n, haveIP
}

// macBlocks hands out copies of hardware addresses from blocks of memory
// it allocates a few thousand addresses at a time.
type macBlocks struct{ free []byte }

const macBlockSize = 6 << 10

// copy returns a copy of mac that shares no memory with mac or with any
// other copy.
func (b *macBlocks) copy(mac []byte) []byte {
	if len(mac) > cap(b.free)-len(b.free) {
		b.free = make([]byte, 0, max(macBlockSize, len(mac)))
	}
	start := len(b.free)
	b.free = append(b.free, mac...)
	return b.free[start:len(b.free):len(b.free)]
}
