package arpprobe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// Addresses of the frame tests: a prober (self) and the peer it asks.
var (
	frameSelfMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	framePeerMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	frameSelfIP  = netip.MustParseAddr("198.18.0.1")
	framePeerIP  = netip.MustParseAddr("198.18.0.2")
)

// arpFrame builds, with the arp and ethernet packages, an Ethernet frame
// holding an ARP packet, padded to 60 bytes as ethernet does. A request
// goes to broadcast, a reply to its target.
func arpFrame(t testing.TB, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatalf("arp.NewPacket: %v", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("arp.Packet.MarshalBinary: %v", err)
	}
	dst := tha
	if op == arp.OperationRequest {
		dst = ethernet.Broadcast
	}
	fb, err := (&ethernet.Frame{Destination: dst, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if err != nil {
		t.Fatalf("ethernet.Frame.MarshalBinary: %v", err)
	}
	return fb
}

// peerReply is the peer's reply to the prober, 60 bytes.
func peerReply(t testing.TB) []byte {
	return arpFrame(t, arp.OperationReply, framePeerMAC, framePeerIP, frameSelfMAC, frameSelfIP)
}

// selfRequest is the prober's broadcast request for the peer, 60 bytes.
func selfRequest(t testing.TB) []byte {
	return arpFrame(t, arp.OperationRequest, frameSelfMAC, frameSelfIP, ethernet.Broadcast, framePeerIP)
}

// edit returns a copy of b changed by f.
func edit(b []byte, f func(b []byte)) []byte {
	c := bytes.Clone(b)
	f(c)
	return c
}

// tag returns b with an 802.1Q-style tag (tpid, tci) inserted after the
// MAC addresses.
func tag(b []byte, tpid, tci uint16) []byte {
	c := make([]byte, 0, len(b)+4)
	c = append(c, b[:12]...)
	c = binary.BigEndian.AppendUint16(c, tpid)
	c = binary.BigEndian.AppendUint16(c, tci)
	return append(c, b[12:]...)
}

func mac6(m net.HardwareAddr) [6]byte { return [6]byte(m) }

func TestParseFrame(t *testing.T) {
	reply := peerReply(t)
	request := selfRequest(t)
	wantReply := Frame{
		EtherDst:  mac6(frameSelfMAC),
		EtherSrc:  mac6(framePeerMAC),
		Op:        opReply,
		SenderMAC: mac6(framePeerMAC),
		SenderIP:  framePeerIP,
		TargetMAC: mac6(frameSelfMAC),
		TargetIP:  frameSelfIP,
	}
	wantRequest := Frame{
		EtherDst:  mac6(ethernet.Broadcast),
		EtherSrc:  mac6(frameSelfMAC),
		Op:        opRequest,
		SenderMAC: mac6(frameSelfMAC),
		SenderIP:  frameSelfIP,
		TargetMAC: mac6(ethernet.Broadcast),
		TargetIP:  framePeerIP,
	}
	withVLAN := func(f Frame, id uint16) Frame { f.VLAN = id; return f }
	setSender := func(m net.HardwareAddr) func([]byte) {
		return func(b []byte) { copy(b[offSenderMAC:], m) }
	}

	tests := []struct {
		name  string
		frame []byte
		want  Frame
		drop  DropReason
	}{
		{name: "reply 60 bytes padded", frame: reply, want: wantReply},
		{name: "reply 42 bytes unpadded (veth)", frame: reply[:42], want: wantReply},
		{name: "reply with trailer", frame: append(bytes.Clone(reply), 0xde, 0xad, 0xbe, 0xef, 0x01), want: wantReply},
		{name: "reply with nonzero padding", frame: edit(reply, func(b []byte) {
			for i := 42; i < len(b); i++ {
				b[i] = 0xa5
			}
		}), want: wantReply},
		{name: "request", frame: request, want: wantRequest},
		{name: "request 42 bytes", frame: request[:42], want: wantRequest},
		{name: "request from 0.0.0.0 (RFC 5227 probe)", frame: edit(request, func(b []byte) { clear(b[offSenderIP : offSenderIP+4]) }),
			want: func() Frame { f := wantRequest; f.SenderIP = netip.IPv4Unspecified(); return f }()},
		{name: "802.1Q tagged reply", frame: tag(reply, etherTypeVLAN, 0xe000|42), want: withVLAN(wantReply, 42)},
		{name: "802.1Q tagged reply 46 bytes", frame: tag(reply[:42], etherTypeVLAN, 7), want: withVLAN(wantReply, 7)},
		{name: "802.1ad tagged request", frame: tag(request, etherTypeQinQ, 100), want: withVLAN(wantRequest, 100)},
		{name: "802.1Q priority tag (VLAN 0)", frame: tag(reply, etherTypeVLAN, 0x2000), want: wantReply},
		{name: "802.1Q tag with priority 7 and DEI", frame: tag(reply, etherTypeVLAN, 0xf000|4094), want: withVLAN(wantReply, 4094)},

		{name: "empty", frame: nil, drop: DropShort},
		{name: "Ethernet header only", frame: reply[:14], drop: DropShort},
		{name: "41 bytes", frame: reply[:41], drop: DropShort},
		{name: "802.1Q tagged 45 bytes", frame: tag(reply[:41], etherTypeVLAN, 7), drop: DropShort},
		{name: "802.1Q tagged 42 bytes", frame: tag(reply[:38], etherTypeVLAN, 7), drop: DropShort},

		{name: "IPv4 EtherType", frame: edit(reply, func(b []byte) { b[12], b[13] = 0x08, 0x00 }), drop: DropNotARP},
		{name: "RARP EtherType", frame: edit(reply, func(b []byte) { b[12], b[13] = 0x80, 0x35 }), drop: DropNotARP},
		{name: "802.1Q tagged IPv4", frame: tag(edit(reply, func(b []byte) { b[12], b[13] = 0x08, 0x00 }), etherTypeVLAN, 7), drop: DropNotARP},
		{name: "two tags (QinQ)", frame: tag(tag(reply, etherTypeVLAN, 7), etherTypeQinQ, 8), drop: DropNotARP},

		{name: "htype 6 (IEEE 802)", frame: edit(reply, func(b []byte) { b[15] = 6 }), drop: DropFormat},
		{name: "ptype IPv6", frame: edit(reply, func(b []byte) { b[16], b[17] = 0x86, 0xdd }), drop: DropFormat},
		{name: "hlen 8", frame: edit(reply, func(b []byte) { b[18] = 8 }), drop: DropFormat},
		{name: "plen 16", frame: edit(reply, func(b []byte) { b[19] = 16 }), drop: DropFormat},
		{name: "802.1Q tagged plen 16", frame: tag(edit(reply, func(b []byte) { b[19] = 16 }), etherTypeVLAN, 7), drop: DropFormat},

		{name: "opcode 0", frame: edit(reply, func(b []byte) { b[21] = 0 }), drop: DropOpcode},
		{name: "opcode 3 (RARP request)", frame: edit(reply, func(b []byte) { b[21] = 3 }), drop: DropOpcode},
		{name: "opcode 0x0102", frame: edit(reply, func(b []byte) { b[20] = 1 }), drop: DropOpcode},

		{name: "sender MAC broadcast", frame: edit(reply, setSender(ethernet.Broadcast)), drop: DropSender},
		{name: "sender MAC multicast", frame: edit(reply, setSender(net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01})), drop: DropSender},
		{name: "sender MAC zero", frame: edit(reply, setSender(make(net.HardwareAddr, 6))), drop: DropSender},
		{name: "request with sender MAC zero", frame: edit(request, setSender(make(net.HardwareAddr, 6))), drop: DropSender},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// parseFrame, on a Frame holding leftovers of another frame.
			f := Frame{VLAN: 99, Op: 9}
			if got := parseFrame(tt.frame, &f); got != tt.drop {
				t.Fatalf("parseFrame(% x) = %v, want %v", tt.frame, got, tt.drop)
			}
			if tt.drop == DropNone && f != tt.want {
				t.Errorf("parseFrame: frame\n got %+v\nwant %+v", f, tt.want)
			}

			got, err := ParseFrame(tt.frame)
			if tt.drop == DropNone {
				if err != nil {
					t.Fatalf("ParseFrame: unexpected error: %v", err)
				}
				if got != tt.want {
					t.Errorf("ParseFrame:\n got %+v\nwant %+v", got, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseFrame: error %v, want one wrapping ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.drop.String()) {
				t.Errorf("ParseFrame: error %q does not name the reason %q", err, tt.drop)
			}
			if got != (Frame{}) {
				t.Errorf("ParseFrame: got %+v with an error, want the zero Frame", got)
			}
		})
	}
}

func TestDropReasonString(t *testing.T) {
	tests := []struct {
		r    DropReason
		want string
	}{
		{DropNone, "none"},
		{DropShort, "short"},
		{DropNotARP, "not-arp"},
		{DropFormat, "format"},
		{DropOpcode, "opcode"},
		{DropSender, "sender"},
		{DropUnsolicited, "unsolicited"},
		{DropVLAN, "vlan"},
		{DropOtherHost, "other-host"},
		{numDropReasons, "drop(9)"},
		{200, "drop(200)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("DropReason(%d).String() = %q, want %q", uint8(tt.r), got, tt.want)
		}
	}
}

func TestRequestTemplate(t *testing.T) {
	tmpl, err := requestTemplate(frameSelfMAC, frameSelfIP)
	if err != nil {
		t.Fatalf("requestTemplate: %v", err)
	}
	if len(tmpl) != 60 {
		t.Errorf("template is %d bytes, want 60 (padded)", len(tmpl))
	}
	if !bytes.Equal(tmpl[minFrameLen:], make([]byte, 60-minFrameLen)) {
		t.Errorf("template padding = % x, want zeros", tmpl[minFrameLen:])
	}

	// One buffer patched over and over, as the prober does: each request
	// must carry nothing of the one before.
	frame := bytes.Clone(tmpl)
	tests := []struct {
		name    string
		dst     net.HardwareAddr
		ip      netip.Addr
		wantDst net.HardwareAddr // Ethernet destination
		wantTHA net.HardwareAddr // ARP target hardware address
	}{
		{name: "broadcast", dst: nil, ip: framePeerIP, wantDst: ethernet.Broadcast, wantTHA: make(net.HardwareAddr, 6)},
		{name: "unicast", dst: framePeerMAC, ip: netip.MustParseAddr("198.19.255.254"), wantDst: framePeerMAC, wantTHA: framePeerMAC},
		{name: "broadcast after unicast", dst: nil, ip: netip.MustParseAddr("198.18.0.3"), wantDst: ethernet.Broadcast, wantTHA: make(net.HardwareAddr, 6)},
		{name: "unicast to another MAC", dst: net.HardwareAddr{0x0a, 1, 2, 3, 4, 5}, ip: framePeerIP, wantDst: net.HardwareAddr{0x0a, 1, 2, 3, 4, 5}, wantTHA: net.HardwareAddr{0x0a, 1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setRequestTarget(frame, tt.dst, tt.ip)

			want := Frame{
				EtherDst:  mac6(tt.wantDst),
				EtherSrc:  mac6(frameSelfMAC),
				Op:        opRequest,
				SenderMAC: mac6(frameSelfMAC),
				SenderIP:  frameSelfIP,
				TargetMAC: mac6(tt.wantTHA),
				TargetIP:  tt.ip,
			}
			got, err := ParseFrame(frame)
			if err != nil {
				t.Fatalf("ParseFrame: %v", err)
			}
			if got != want {
				t.Errorf("ParseFrame:\n got %+v\nwant %+v", got, want)
			}

			// The arp and ethernet packages read the same request.
			var ef ethernet.Frame
			if err := ef.UnmarshalBinary(frame); err != nil {
				t.Fatalf("ethernet.Frame.UnmarshalBinary: %v", err)
			}
			if !bytes.Equal(ef.Destination, tt.wantDst) || !bytes.Equal(ef.Source, frameSelfMAC) || ef.EtherType != ethernet.EtherTypeARP {
				t.Errorf("ethernet header: dst %v src %v type %v, want %v %v ARP", ef.Destination, ef.Source, ef.EtherType, tt.wantDst, frameSelfMAC)
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(ef.Payload); err != nil {
				t.Fatalf("arp.Packet.UnmarshalBinary: %v", err)
			}
			wantP := arp.Packet{
				HardwareType:       1,
				ProtocolType:       uint16(ethernet.EtherTypeIPv4),
				HardwareAddrLength: 6,
				IPLength:           4,
				Operation:          arp.OperationRequest,
				SenderHardwareAddr: frameSelfMAC,
				SenderIP:           frameSelfIP,
				TargetHardwareAddr: tt.wantTHA,
				TargetIP:           tt.ip,
			}
			if !packetsEqual(p, wantP) {
				t.Errorf("arp.Packet:\n got %+v\nwant %+v", p, wantP)
			}
		})
	}
}

func TestRequestTemplateErrors(t *testing.T) {
	tests := []struct {
		name string
		mac  net.HardwareAddr
		ip   netip.Addr
	}{
		{name: "short MAC", mac: net.HardwareAddr{1, 2, 3}, ip: frameSelfIP},
		{name: "IPv6 address", mac: frameSelfMAC, ip: netip.MustParseAddr("2001:db8::1")},
		{name: "no address", mac: frameSelfMAC, ip: netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := requestTemplate(tt.mac, tt.ip)
			if err == nil {
				t.Fatalf("requestTemplate(%v, %v) = % x, want an error", tt.mac, tt.ip, b)
			}
			if !strings.HasPrefix(err.Error(), "arpprobe: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// packetsEqual compares two arp.Packets field by field.
func packetsEqual(a, b arp.Packet) bool {
	return a.HardwareType == b.HardwareType && a.ProtocolType == b.ProtocolType &&
		a.HardwareAddrLength == b.HardwareAddrLength && a.IPLength == b.IPLength &&
		a.Operation == b.Operation &&
		bytes.Equal(a.SenderHardwareAddr, b.SenderHardwareAddr) && a.SenderIP == b.SenderIP &&
		bytes.Equal(a.TargetHardwareAddr, b.TargetHardwareAddr) && a.TargetIP == b.TargetIP
}

func TestParseFrameAllocs(t *testing.T) {
	frames := [][]byte{peerReply(t)[:42], tag(peerReply(t), etherTypeVLAN, 5), edit(peerReply(t), func(b []byte) { b[19] = 16 })}
	var f Frame
	allocs := testing.AllocsPerRun(100, func() {
		for _, b := range frames {
			parseFrame(b, &f)
		}
	})
	if allocs != 0 {
		t.Errorf("parseFrame: %v allocations per run, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := ParseFrame(frames[0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseFrame of a good frame: %v allocations per run, want 0", allocs)
	}
	// A storm is mostly frames to reject: rejecting costs nothing either.
	allocs = testing.AllocsPerRun(100, func() {
		for _, b := range frames[1:] {
			if _, err := ParseFrame(b[:30]); !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			if _, err := ParseFrame(b); err == nil && b[19] == 16 {
				t.Fatal("plen 16 accepted")
			}
		}
	})
	if allocs != 0 {
		t.Errorf("ParseFrame of rejected frames: %v allocations per run, want 0", allocs)
	}
}

func BenchmarkParseFrame(b *testing.B) {
	frame := peerReply(b)[:42]
	var f Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if r := parseFrame(frame, &f); r != DropNone {
			b.Fatalf("parseFrame: %v", r)
		}
	}
}

// FuzzParseFrame checks that parseFrame never panics, that every frame
// it accepts reads the same with the arp package and re-encodes to the
// same bytes, and that every drop reason it gives is true of the frame.
func FuzzParseFrame(f *testing.F) {
	reply := peerReply(f)
	request := selfRequest(f)
	for _, b := range [][]byte{
		reply,
		reply[:42],
		request,
		request[:42],
		append(bytes.Clone(reply), 0xde, 0xad, 0xbe, 0xef),
		tag(reply, etherTypeVLAN, 42),
		tag(reply, etherTypeVLAN, 0x1000|42),
		tag(request[:42], etherTypeQinQ, 4095),
		tag(tag(reply, etherTypeVLAN, 7), etherTypeQinQ, 8),
		edit(reply, func(b []byte) { b[19] = 16 }),
		edit(reply, func(b []byte) { b[21] = 3 }),
		edit(reply, func(b []byte) { b[12] = 0x08 }),
		edit(reply, func(b []byte) { copy(b[offSenderMAC:], ethernet.Broadcast) }),
		reply[:41],
		nil,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		var fr Frame
		r := parseFrame(b, &fr)
		if !bytes.Equal(b, orig) {
			t.Fatalf("parseFrame changed its input")
		}
		if r >= numDropReasons || r == DropUnsolicited {
			t.Fatalf("parseFrame returned %v, which it never should", r)
		}

		// Where the ARP packet would start: after the header and at most
		// one tag.
		off := etherHeaderLen
		var vlan uint16
		et := uint16(0)
		if len(b) >= etherHeaderLen {
			et = binary.BigEndian.Uint16(b[12:14])
		}
		if (et == etherTypeVLAN || et == etherTypeQinQ) && len(b) >= 18 {
			vlan = binary.BigEndian.Uint16(b[14:16]) & 0x0fff
			et = binary.BigEndian.Uint16(b[16:18])
			off += 4
		}

		switch r {
		case DropShort:
			if len(b) >= off+arpLen {
				t.Fatalf("dropped as short, but %d bytes hold a packet at offset %d", len(b), off)
			}
			return
		case DropNotARP:
			if et == etherTypeARP {
				t.Fatalf("dropped as not ARP, but the EtherType is ARP")
			}
			return
		}
		if len(b) < off+arpLen || et != etherTypeARP {
			t.Fatalf("got %v for a frame of %d bytes with EtherType %#04x at offset %d", r, len(b), et, off-2)
		}

		var p arp.Packet
		if err := p.UnmarshalBinary(b[off:]); err != nil {
			if r == DropFormat {
				return // e.g. plen 255 does not fit; arp agrees it is bad
			}
			t.Fatalf("parseFrame: %v, but arp.Packet.UnmarshalBinary: %v", r, err)
		}
		format := p.HardwareType == 1 && p.ProtocolType == 0x0800 && p.HardwareAddrLength == 6 && p.IPLength == 4
		if r == DropFormat {
			if format {
				t.Fatalf("dropped for its format, but arp reads %+v", p)
			}
			return
		}
		if !format {
			t.Fatalf("parseFrame: %v for a packet of format %+v", r, p)
		}
		op := p.Operation == arp.OperationRequest || p.Operation == arp.OperationReply
		if (r == DropOpcode) == op {
			t.Fatalf("parseFrame: %v for opcode %d", r, p.Operation)
		}
		if r == DropOpcode {
			return
		}
		sha := [6]byte(p.SenderHardwareAddr)
		if (r == DropSender) == unicastMAC(sha) {
			t.Fatalf("parseFrame: %v for sender MAC %v", r, p.SenderHardwareAddr)
		}
		if r == DropSender {
			return
		}
		if r != DropNone {
			t.Fatalf("parseFrame: unexpected reason %v", r)
		}

		// Accepted: every field is what arp reads...
		want := Frame{
			EtherDst:  [6]byte(b[0:6]),
			EtherSrc:  [6]byte(b[6:12]),
			VLAN:      vlan,
			Op:        uint16(p.Operation),
			SenderMAC: sha,
			SenderIP:  p.SenderIP,
			TargetMAC: [6]byte(p.TargetHardwareAddr),
			TargetIP:  p.TargetIP,
		}
		if fr != want {
			t.Fatalf("parseFrame:\n got %+v\nwant %+v", fr, want)
		}
		// ...and re-encodes to the bytes it came from.
		np, err := arp.NewPacket(arp.Operation(fr.Op), fr.SenderMAC[:], fr.SenderIP, fr.TargetMAC[:], fr.TargetIP)
		if err != nil {
			t.Fatalf("arp.NewPacket(%+v): %v", fr, err)
		}
		pb, err := np.MarshalBinary()
		if err != nil {
			t.Fatalf("arp.Packet.MarshalBinary: %v", err)
		}
		if !bytes.Equal(pb, b[off:off+arpLen]) {
			t.Fatalf("re-encoded packet\n got % x\nwant % x", pb, b[off:off+arpLen])
		}
		// An untagged frame, and a tagged one the ethernet package accepts
		// (it refuses the reserved VLAN 4095 and a lone 802.1ad tag),
		// reads the same with the ethernet package.
		if off == etherHeaderLen || (binary.BigEndian.Uint16(b[12:14]) == etherTypeVLAN && vlan != 0x0fff) {
			var ef ethernet.Frame
			if err := ef.UnmarshalBinary(b); err != nil {
				t.Fatalf("ethernet.Frame.UnmarshalBinary: %v", err)
			}
			efVLAN := uint16(0)
			if ef.VLAN != nil {
				efVLAN = ef.VLAN.ID
			}
			if ef.EtherType != ethernet.EtherTypeARP || [6]byte(ef.Destination) != fr.EtherDst ||
				[6]byte(ef.Source) != fr.EtherSrc || efVLAN != fr.VLAN {
				t.Fatalf("ethernet reads dst %v src %v type %v VLAN %d; parseFrame %+v", ef.Destination, ef.Source, ef.EtherType, efVLAN, fr)
			}
		}
	})
}
