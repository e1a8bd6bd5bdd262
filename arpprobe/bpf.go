package arpprobe

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// The socket filter runs in the kernel for every frame that reaches a
// socket bound to ETH_P_ARP on the interface, before the frame is queued.
// Frames it rejects cost no copy, no wake-up and no receive buffer space.
//
// It has two parts. The delivery part reads metadata the kernel keeps
// beside the frame, so golang.org/x/net/bpf's VM cannot run it; the frame
// part reads only bytes and the length, and the tests run it in the VM.
//
// Why a delivery part: by the time a socket bound to one protocol sees a
// frame, the kernel has already removed an 802.1Q tag from the data and
// cleared it from the metadata (measured on Linux 6.18), so neither the
// EtherType at offset 12 nor SKF_AD_VLAN_TAG_PRESENT shows that the frame
// was tagged. What remains visible is this:
//   - a tagged frame for a VLAN without a VLAN device here is marked
//     PACKET_OTHERHOST;
//   - a tagged frame for a VLAN device, or a frame for a macvlan on top of
//     the interface, arrives with the upper device as skb->dev, whose index
//     differs from the one the socket is bound to.
//
// Rejecting both leaves the untagged frames addressed to this interface
// (unicast to its MAC, broadcast or multicast). A side effect: in
// promiscuous mode, unicast frames to other hosts are rejected too.

// filterSnapLen is what an accepting filter returns: the number of bytes
// of the frame to keep. It is larger than any frame, so frames are kept
// whole, trailers included.
const filterSnapLen = 1 << 18

// Packet types of sockaddr_ll.sll_pkttype, as SKF_AD_PKTTYPE reports them.
const pktTypeOtherHost = 3 // PACKET_OTHERHOST; 0–2 are host, broadcast, multicast

// deliveryFilter returns the part of the filter that accepts only frames
// the kernel delivered to the interface with index ifindex itself: not to
// an upper device (VLAN, macvlan) and not marked as for another host. It
// falls through to the instruction after it when the frame passes.
func deliveryFilter(ifindex uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtInterfaceIndex},                          // A = skb->dev->ifindex
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ifindex, SkipTrue: 2},          //   an upper device: reject
		bpf.LoadExtension{Num: bpf.ExtType},                                    // A = skb->pkt_type
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: pktTypeOtherHost, SkipTrue: 1}, // host, broadcast, multicast: go on
		bpf.RetConstant{Val: 0},                                                // reject
	}
}

// frameFilter returns the part of the filter that accepts only an IPv4 ARP
// packet over Ethernet (htype 1, ptype 0x0800, hlen 6, plen 4) with opcode
// 2, and with opcode 1 as well when requests is true, in an untagged frame
// of at least 42 bytes, whose sender MAC can be a host's: not broadcast,
// multicast (the group bit of its first byte) or all-zero. No genuine
// answer comes from such a MAC (the parser drops it as DropSender), so in
// a storm of forged claims they cost nothing past the filter. See frame.go
// for the layout.
//
// The target MAC is not checked: Linux answers with the asker's MAC there,
// but a reply's target fields are the asker's business, and stacks that
// answer RFC 5227 probes or send gratuitous replies put a broadcast or
// zero MAC in it; nothing the prober decides depends on it.
func frameFilter(requests bool) []bpf.Instruction {
	// r shifts the jumps to the reject instruction over the one extra
	// comparison that accepting requests takes.
	r := uint8(0)
	if requests {
		r = 1
	}
	p := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtLen},                                           //  0: A = frame length
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: minFrameLen, SkipTrue: 6 + r},        //  1: < 42 bytes: reject
		bpf.LoadAbsolute{Off: 12, Size: 2},                                           //  2: A = EtherType       [12:14]
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeARP, SkipTrue: 4 + r},       //  3: not 0x0806: reject
		bpf.LoadAbsolute{Off: 14, Size: 4},                                           //  4: A = htype, ptype    [14:16] [16:18]
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0001_0800, SkipTrue: 2 + r},        //  5: not 1, 0x0800: reject
		bpf.LoadAbsolute{Off: 18, Size: 4},                                           //  6: A = hlen, plen, op  [18] [19] [20:22]
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0604_0000 | opReply, SkipTrue: 1 + r}, //  7: 6, 4, reply: check the sender
	}
	if requests {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0604_0000 | opRequest, SkipTrue: 1}) //  8: 6, 4, request: check the sender
	}
	return append(p,
		bpf.RetConstant{Val: 0},                                 // reject (length, type or opcode)
		bpf.LoadAbsolute{Off: offSenderMAC, Size: 1},            // A = sender MAC[0]     [22]
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 1, SkipTrue: 4},  //   group bit: reject
		bpf.LoadAbsolute{Off: offSenderMAC, Size: 4},            // A = sender MAC[0:4]   [22:26]
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 3}, //   not zero: accept
		bpf.LoadAbsolute{Off: offSenderMAC + 4, Size: 2},        // A = sender MAC[4:6]   [26:28]
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 1}, //   not zero: accept
		bpf.RetConstant{Val: 0},                                 // reject (sender MAC)
		bpf.RetConstant{Val: filterSnapLen},                     // accept the whole frame
	)
}

// arpFilter assembles the socket filter for a socket bound to the
// interface with index ifindex: deliveryFilter, then frameFilter. It is
// assembled once per socket, because it holds the interface index.
func arpFilter(ifindex int, requests bool) ([]bpf.RawInstruction, error) {
	if ifindex <= 0 || ifindex > 1<<31-1 {
		return nil, fmt.Errorf("arpprobe: build socket filter: invalid interface index %d", ifindex)
	}
	prog := append(deliveryFilter(uint32(ifindex)), frameFilter(requests)...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("arpprobe: build socket filter: %w", err)
	}
	return raw, nil
}
