package arpprobe

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ndMessage builds an RTM_NEWNEIGH body: struct ndmsg, then attributes.
func ndMessage(family byte, ifindex int32, state uint16, flags byte, attrs ...[]byte) []byte {
	ne := binary.NativeEndian
	m := make([]byte, unix.SizeofNdMsg)
	m[0] = family
	ne.PutUint32(m[4:], uint32(ifindex))
	ne.PutUint16(m[8:], state)
	m[10] = flags
	for _, a := range attrs {
		m = append(m, a...)
	}
	return m
}

// rtAttr builds one attribute, padded to 4 bytes.
func rtAttr(typ uint16, data []byte) []byte {
	a := make([]byte, unix.SizeofRtAttr, unix.SizeofRtAttr+len(data)+3)
	binary.NativeEndian.PutUint16(a[0:], uint16(unix.SizeofRtAttr+len(data)))
	binary.NativeEndian.PutUint16(a[2:], typ)
	a = append(a, data...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func TestParseNeighMsg(t *testing.T) {
	mac := []byte{2, 0, 0, 0, 0, 9}
	ip := []byte{198, 18, 0, 9}
	cacheinfo := make([]byte, 16)
	for _, c := range []struct {
		name string
		msg  []byte
		want *Neighbor // nil: not an entry
	}{
		{"stale with MAC", ndMessage(unix.AF_INET, 3, unix.NUD_STALE, 0,
			rtAttr(unix.NDA_DST, ip), rtAttr(unix.NDA_LLADDR, mac), rtAttr(unix.NDA_CACHEINFO, cacheinfo)),
			&Neighbor{IP: netip.MustParseAddr("198.18.0.9"), Ifindex: 3, MAC: mac, State: StateStale}},
		{"extern_learn, attributes in another order", ndMessage(unix.AF_INET, 7, unix.NUD_REACHABLE, unix.NTF_EXT_LEARNED,
			rtAttr(unix.NDA_PROBES, []byte{1, 0, 0, 0}), rtAttr(unix.NDA_LLADDR, mac), rtAttr(unix.NDA_DST, ip)),
			&Neighbor{IP: netip.MustParseAddr("198.18.0.9"), Ifindex: 7, MAC: mac, State: StateReachable, Flags: FlagExternLearned}},
		{"incomplete: no MAC", ndMessage(unix.AF_INET, 3, unix.NUD_INCOMPLETE, 0, rtAttr(unix.NDA_DST, ip)),
			&Neighbor{IP: netip.MustParseAddr("198.18.0.9"), Ifindex: 3, State: StateIncomplete}},
		{"empty MAC", ndMessage(unix.AF_INET, 3, unix.NUD_NOARP, 0, rtAttr(unix.NDA_DST, ip), rtAttr(unix.NDA_LLADDR, nil)),
			&Neighbor{IP: netip.MustParseAddr("198.18.0.9"), Ifindex: 3, State: StateNoARP}},
		{"IPv6", ndMessage(unix.AF_INET6, 3, unix.NUD_STALE, 0, rtAttr(unix.NDA_DST, make([]byte, 16))), nil},
		{"no address", ndMessage(unix.AF_INET, 3, unix.NUD_STALE, 0, rtAttr(unix.NDA_LLADDR, mac)), nil},
		{"address of the wrong length", ndMessage(unix.AF_INET, 3, unix.NUD_STALE, 0, rtAttr(unix.NDA_DST, ip[:3])), nil},
		{"short header", ndMessage(unix.AF_INET, 3, unix.NUD_STALE, 0)[:8], nil},
		{"attribute longer than the message", append(ndMessage(unix.AF_INET, 3, unix.NUD_STALE, 0), 0xff, 0, 1, 0), nil},
		{"attribute shorter than its header", append(ndMessage(unix.AF_INET, 3, unix.NUD_STALE, 0, rtAttr(unix.NDA_DST, ip)), 2, 0, 1, 0), nil},
	} {
		var macs macBlocks
		got, ok := parseNeighMsg(c.msg, &macs)
		switch {
		case c.want == nil && ok:
			t.Errorf("%s: parsed %s; want no entry", c.name, neighborString(got))
		case c.want != nil && !ok:
			t.Errorf("%s: no entry; want %s", c.name, neighborString(*c.want))
		case c.want != nil && neighborString(got) != neighborString(*c.want):
			t.Errorf("%s: %s; want %s", c.name, neighborString(got), neighborString(*c.want))
		}
	}
}

func TestMacBlocksCopiesDoNotAlias(t *testing.T) {
	var b macBlocks
	src := []byte{2, 0, 0, 0, 0, 1}
	var got [][]byte
	for i := range 3000 { // more than one block
		src[5] = byte(i)
		got = append(got, b.copy(src))
	}
	for i, m := range got {
		if want := []byte{2, 0, 0, 0, 0, byte(i)}; !bytes.Equal(m, want) {
			t.Fatalf("copy %d = %v; want %v", i, net.HardwareAddr(m), net.HardwareAddr(want))
		}
		if cap(m) != len(m) {
			t.Fatalf("copy %d has spare capacity %d: an append would overwrite the next", i, cap(m)-len(m))
		}
	}
}

// TestKernelStreamedDumpMatchesNeighList reads one table, larger than
// one netlink read, both through OpenKernelAt's streamed dump and
// through netlink.Handle.NeighList (NewKernel), and wants the same
// entries from both.
func TestKernelStreamedDumpMatchesNeighList(t *testing.T) {
	lab := newKernelLab(t)
	lab.seed(t)
	const extra = 600 // PERMANENT entries: outside the host-wide gc_thresh
	for i := range extra {
		ip := netip.AddrFrom4([4]byte{198, 18, 1 + byte(i/250), byte(i%250 + 1)})
		mac := net.HardwareAddr{2, 0xee, 0, 0, byte(i >> 8), byte(i)}
		if err := lab.ns.AddNeigh("k0", ip, mac, netlink.NUD_PERMANENT, 0); err != nil {
			t.Fatal(err)
		}
	}
	// An entry on the other link.
	if err := lab.ns.AddNeigh("k1", netip.MustParseAddr("198.18.9.2"), labMAC1, netlink.NUD_PERMANENT, 0); err != nil {
		t.Fatal(err)
	}
	streamed := lab.neighbors(t)
	old := NewKernel(lab.ns.Handle())
	listed, err := old.Neighbors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(listed, func(a, b Neighbor) int { return a.IP.Compare(b.IP) })
	if len(streamed) != 3+extra+1 {
		t.Errorf("streamed dump: %d entries; want %d", len(streamed), 3+extra+1)
	}
	if a, b := neighborsString(streamed), neighborsString(listed); a != b {
		t.Errorf("streamed dump and NeighList differ:\nstreamed:%s\nNeighList:%s", a, b)
	}

	// The scan passes the same entries, without the names, and keeps
	// nothing: a scan allocates nothing.
	ctx := context.Background()
	var scanned []Neighbor
	if err := lab.k.ScanNeighbors(ctx, func(n *Neighbor) {
		c := *n
		c.MAC = slices.Clone(n.MAC)
		scanned = append(scanned, c)
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(scanned, func(a, b Neighbor) int { return a.IP.Compare(b.IP) })
	for i := range listed {
		listed[i].Interface = ""
	}
	if a, b := neighborsString(scanned), neighborsString(listed); a != b {
		t.Errorf("scan and NeighList differ:\nscan:%s\nNeighList:%s", a, b)
	}
	count := 0
	countOne := func(*Neighbor) { count++ }
	allocs := testing.AllocsPerRun(10, func() {
		if err := lab.k.ScanNeighbors(ctx, countOne); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || count != 11*len(listed) {
		t.Errorf("a scan allocates %v times and passed %d entries in 11 scans; want 0 and %d", allocs, count, 11*len(listed))
	}
}
