package arpprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// An ARP frame for IPv4 over Ethernet, as the prober reads and writes it:
//
//	 0: destination MAC     (6)
//	 6: source MAC          (6)
//	12: EtherType 0x0806    (2)   [or 0x8100/0x88a8, TCI (2), then 0x0806]
//	14: htype 1             (2)
//	16: ptype 0x0800        (2)
//	18: hlen 6, plen 4      (1+1)
//	20: opcode              (2)   1 request, 2 reply
//	22: sender MAC          (6)
//	28: sender IP           (4)
//	32: target MAC          (6)
//	38: target IP           (4)
//	42: padding to 60 bytes, maybe a trailer: ignored
const (
	etherHeaderLen = 14
	arpLen         = 28
	minFrameLen    = etherHeaderLen + arpLen // 42: veth does not pad

	etherTypeARP   = 0x0806
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	opRequest      = 1
	opReply        = 2
	offSenderMAC   = etherHeaderLen + 8
	offSenderIP    = etherHeaderLen + 14
	offTargetMAC   = etherHeaderLen + 18
	offTargetIP    = etherHeaderLen + 24
	offEtherDst    = 0
	maxFrameBuffer = 2048
)

// Frame is a parsed IPv4-over-Ethernet ARP frame.
type Frame struct {
	EtherDst  [6]byte
	EtherSrc  [6]byte
	VLAN      uint16 // VLAN ID of an 802.1Q tag, 0 when untagged
	Op        uint16 // 1 request, 2 reply
	SenderMAC [6]byte
	SenderIP  netip.Addr
	TargetMAC [6]byte
	TargetIP  netip.Addr
}

// DropReason says why a received frame was not used. The prober counts
// drops by reason (Stats.Dropped).
type DropReason uint8

// The reasons a frame is dropped.
const (
	DropNone        DropReason = iota
	DropShort                  // shorter than an Ethernet header plus an ARP packet
	DropNotARP                 // EtherType is not ARP
	DropFormat                 // not htype 1, ptype IPv4, hlen 6, plen 4
	DropOpcode                 // neither request nor reply
	DropSender                 // sender MAC broadcast, multicast or all-zero
	DropUnsolicited            // a reply nobody waits for: an address not asked about, or asked and done with (late)
	DropVLAN                   // tagged with a VLAN ID: for a VLAN other than the interface's
	DropOtherHost              // for another host or an upper device (VLAN, macvlan): counted by the kernel's filter only
	numDropReasons
)

var dropNames = [numDropReasons]string{"none", "short", "not-arp", "format", "opcode", "sender", "unsolicited", "vlan", "other-host"}

// String returns a short name for the reason, as used in reports.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// ErrMalformed is wrapped by ParseFrame's errors.
var ErrMalformed = errors.New("malformed ARP frame")

// malformedErrors are ParseFrame's errors, one per reason, made once so
// that rejecting a frame does not allocate. They are never changed.
var malformedErrors = func() (e [numDropReasons]error) {
	for r := range e {
		e[r] = fmt.Errorf("arpprobe: %w: %s", ErrMalformed, DropReason(r))
	}
	return e
}()

// ParseFrame parses an Ethernet frame holding an IPv4 ARP request or reply.
// Padding and trailers after the ARP packet are ignored; one 802.1Q or
// 802.1ad tag is accepted. The error wraps ErrMalformed and names the
// reason. ParseFrame does not allocate, whether it accepts the frame or
// not.
func ParseFrame(b []byte) (Frame, error) {
	var f Frame
	if r := parseFrame(b, &f); r != DropNone {
		return Frame{}, malformedErrors[r]
	}
	return f, nil
}

// parseFrame is ParseFrame without allocation: it fills f and returns
// DropNone, or the reason the frame is unusable.
func parseFrame(b []byte, f *Frame) DropReason {
	if len(b) < minFrameLen {
		return DropShort
	}
	copy(f.EtherDst[:], b[0:6])
	copy(f.EtherSrc[:], b[6:12])
	et := binary.BigEndian.Uint16(b[12:14])
	f.VLAN = 0
	if et == etherTypeVLAN || et == etherTypeQinQ {
		if len(b) < minFrameLen+4 {
			return DropShort
		}
		f.VLAN = binary.BigEndian.Uint16(b[14:16]) & 0x0fff
		et = binary.BigEndian.Uint16(b[16:18])
		b = b[4:] // shift so the ARP packet sits at the usual offsets
	}
	if et != etherTypeARP {
		return DropNotARP
	}
	a := b[etherHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 ||
		a[4] != 6 || a[5] != 4 {
		return DropFormat
	}
	f.Op = binary.BigEndian.Uint16(a[6:8])
	if f.Op != opRequest && f.Op != opReply {
		return DropOpcode
	}
	copy(f.SenderMAC[:], a[8:14])
	f.SenderIP = netip.AddrFrom4([4]byte(a[14:18]))
	copy(f.TargetMAC[:], a[18:24])
	f.TargetIP = netip.AddrFrom4([4]byte(a[24:28]))
	if !unicastMAC(f.SenderMAC) {
		return DropSender
	}
	return DropNone
}

// unicastMAC reports whether m can be a host's address: not all-zero, not
// broadcast, not multicast (group bit clear).
func unicastMAC(m [6]byte) bool {
	return m[0]&1 == 0 && m != [6]byte{}
}

// requestTemplate builds, with the arp and ethernet packages, a request
// frame from (srcMAC, srcIP) whose target fields are patched in place by
// setRequestTarget for each peer.
func requestTemplate(srcMAC net.HardwareAddr, srcIP netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, srcMAC, srcIP, ethernet.Broadcast, netip.IPv4Unspecified())
	if err != nil {
		return nil, fmt.Errorf("arpprobe: build ARP request: %w", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("arpprobe: build ARP request: %w", err)
	}
	f := &ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      srcMAC,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	fb, err := f.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("arpprobe: build Ethernet frame: %w", err)
	}
	// ethernet pads to 60 bytes; keep it, the wire would anyway.
	return fb, nil
}

// setRequestSender sets the sender protocol address of a request built by
// requestTemplate; an invalid src means 0.0.0.0 (an RFC 5227 probe).
func setRequestSender(frame []byte, src netip.Addr) {
	var a4 [4]byte
	if src.Is4() {
		a4 = src.As4()
	}
	copy(frame[offSenderIP:offSenderIP+4], a4[:])
}

// setRequestTarget turns a template from requestTemplate into a request
// for ip: broadcast when dst is nil, else unicast to dst. A unicast request
// names the asked MAC as target hardware address (as the kernel's own
// unicast probes do); a broadcast request leaves it zero (RFC 826).
func setRequestTarget(frame []byte, dst net.HardwareAddr, ip netip.Addr) {
	if dst == nil {
		copy(frame[offEtherDst:offEtherDst+6], ethernet.Broadcast)
		clear(frame[offTargetMAC : offTargetMAC+6])
	} else {
		copy(frame[offEtherDst:offEtherDst+6], dst)
		copy(frame[offTargetMAC:offTargetMAC+6], dst)
	}
	a4 := ip.As4()
	copy(frame[offTargetIP:offTargetIP+4], a4[:])
}
