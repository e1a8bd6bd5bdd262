package arpprobe

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/net/bpf"
)

// TestFrameFilter runs the byte part of the socket filter in the bpf VM.
// The delivery part reads kernel metadata the VM lacks; the namespace
// tests in conn_linux_test.go check it against the kernel.
func TestFrameFilter(t *testing.T) {
	reply := peerReply(t)
	request := selfRequest(t)
	setByte := func(i int, v byte) []byte { return edit(reply, func(b []byte) { b[i] = v }) }

	tests := []struct {
		name     string
		frame    []byte
		replies  bool // accepted by the filter for replies only
		requests bool // accepted by the filter that also takes requests
	}{
		{name: "reply 42 bytes", frame: reply[:42], replies: true, requests: true},
		{name: "reply 60 bytes", frame: reply, replies: true, requests: true},
		{name: "reply with trailer", frame: append(bytes.Clone(reply), 1, 2, 3, 4, 5, 6, 7, 8), replies: true, requests: true},
		{name: "reply as a jumbo frame", frame: append(bytes.Clone(reply), make([]byte, 9000)...), replies: true, requests: true},
		{name: "request 42 bytes", frame: request[:42], replies: false, requests: true},
		{name: "request 60 bytes", frame: request, replies: false, requests: true},
		{name: "reply sent to broadcast", frame: edit(reply, func(b []byte) { copy(b, ethernet.Broadcast) }), replies: true, requests: true},

		{name: "sender MAC zero but its last byte", frame: edit(reply, func(b []byte) { copy(b[offSenderMAC:], []byte{0, 0, 0, 0, 0, 1}) }), replies: true, requests: true},
		{name: "sender MAC zero but its first byte", frame: edit(reply, func(b []byte) { copy(b[offSenderMAC:], []byte{2, 0, 0, 0, 0, 0}) }), replies: true, requests: true},
		{name: "sender MAC with the local bit", frame: edit(reply, func(b []byte) { b[offSenderMAC] = 0x02 }), replies: true, requests: true},

		{name: "sender MAC broadcast", frame: edit(reply, func(b []byte) { copy(b[offSenderMAC:], ethernet.Broadcast) })},
		{name: "sender MAC IPv4 multicast", frame: edit(reply, func(b []byte) { copy(b[offSenderMAC:], []byte{0x01, 0, 0x5e, 0, 0, 1}) })},
		{name: "sender MAC IPv6 multicast", frame: edit(reply, func(b []byte) { copy(b[offSenderMAC:], []byte{0x33, 0x33, 0, 0, 0, 1}) })},
		{name: "sender MAC group bit only", frame: edit(reply, func(b []byte) { b[offSenderMAC] |= 1 })},
		{name: "sender MAC zero", frame: edit(reply, func(b []byte) { clear(b[offSenderMAC : offSenderMAC+6]) })},
		{name: "request from a zero sender MAC", frame: edit(request, func(b []byte) { clear(b[offSenderMAC : offSenderMAC+6]) })},
		{name: "request from a multicast sender MAC", frame: edit(request, func(b []byte) { b[offSenderMAC] |= 1 })},
		{name: "empty", frame: nil},
		{name: "41 bytes", frame: reply[:41]},
		{name: "request 41 bytes", frame: request[:41]},
		{name: "22 bytes, up to the opcode", frame: reply[:22]},
		{name: "EtherType IPv4", frame: edit(reply, func(b []byte) { b[12], b[13] = 0x08, 0x00 })},
		{name: "EtherType 0x0608 (byte order)", frame: edit(reply, func(b []byte) { b[12], b[13] = 0x06, 0x08 })},
		{name: "802.1Q tag in the data", frame: tag(reply, etherTypeVLAN, 5)},
		{name: "802.1ad tag in the data", frame: tag(request, etherTypeQinQ, 5)},
		{name: "htype 6", frame: setByte(15, 6)},
		{name: "htype 0x0101", frame: setByte(14, 1)},
		{name: "ptype IPv6", frame: edit(reply, func(b []byte) { b[16], b[17] = 0x86, 0xdd })},
		{name: "ptype 0x0801", frame: setByte(17, 1)},
		{name: "hlen 8", frame: setByte(18, 8)},
		{name: "hlen 0", frame: setByte(18, 0)},
		{name: "plen 16", frame: setByte(19, 16)},
		{name: "plen 6", frame: setByte(19, 6)},
		{name: "opcode 0", frame: setByte(21, 0)},
		{name: "opcode 3 (RARP request)", frame: setByte(21, 3)},
		{name: "opcode 4 (RARP reply)", frame: setByte(21, 4)},
		{name: "opcode 0x0102", frame: setByte(20, 1)},
		{name: "opcode 0x0201", frame: edit(request, func(b []byte) { b[20] = 2 })},
		{name: "RARP EtherType with a reply", frame: edit(reply, func(b []byte) { b[12], b[13] = 0x80, 0x35 })},
	}
	for _, requests := range []bool{false, true} {
		vm, err := bpf.NewVM(frameFilter(requests))
		if err != nil {
			t.Fatalf("bpf.NewVM(frameFilter(%v)): %v", requests, err)
		}
		for _, tt := range tests {
			want := tt.replies
			if requests {
				want = tt.requests
			}
			got, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatalf("requests=%v, %s: vm.Run: %v", requests, tt.name, err)
			}
			switch {
			case want && got < len(tt.frame):
				// The VM returns the filter's value as is; the kernel
				// keeps min(value, frame length) bytes.
				t.Errorf("requests=%v, %s: filter keeps %d of %d bytes, want the whole frame", requests, tt.name, got, len(tt.frame))
			case !want && got != 0:
				t.Errorf("requests=%v, %s: filter accepted %d bytes, want it rejected", requests, tt.name, got)
			}
		}
	}
}

// TestFrameFilterAgreesWithParseFrame checks the filter against the
// parser on every single-byte change of the ARP header: a frame the filter
// takes is one parseFrame reads as a reply (or request), and the filter
// rejects every frame parseFrame drops for its format or opcode.
func TestFrameFilterAgreesWithParseFrame(t *testing.T) {
	for _, requests := range []bool{false, true} {
		vm, err := bpf.NewVM(frameFilter(requests))
		if err != nil {
			t.Fatal(err)
		}
		for _, base := range [][]byte{peerReply(t)[:42], selfRequest(t)[:42]} {
			// Every value of every byte up to the sender MAC's last.
			for i := 12; i < offSenderMAC+6; i++ {
				for v := 0; v < 256; v++ {
					b := edit(base, func(b []byte) { b[i] = byte(v) })
					n, err := vm.Run(b)
					if err != nil {
						t.Fatal(err)
					}
					var f Frame
					r := parseFrame(b, &f)
					// 42 bytes leave no room for a tag, so parseFrame too
					// takes only untagged frames here.
					want := r == DropNone && (f.Op == opReply || requests)
					if (n != 0) != want {
						t.Fatalf("requests=%v, byte %d = %#02x: filter kept %d bytes, parseFrame says %v (op %d)", requests, i, v, n, r, f.Op)
					}
				}
			}
		}
	}
}

func TestARPFilter(t *testing.T) {
	for _, requests := range []bool{false, true} {
		raw, err := arpFilter(7, requests)
		if err != nil {
			t.Fatalf("arpFilter(7, %v): %v", requests, err)
		}
		got, ok := bpf.Disassemble(raw)
		if !ok {
			t.Fatalf("arpFilter(7, %v): program does not disassemble", requests)
		}
		want := append(deliveryFilter(7), frameFilter(requests)...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("arpFilter(7, %v) =\n%v\nwant\n%v", requests, got, want)
		}
		// The delivery part ends in a reject and falls through to the
		// frame part; its jumps stay inside it.
		d := deliveryFilter(7)
		for i, ins := range d {
			if j, ok := ins.(bpf.JumpIf); ok {
				if end := i + 1 + int(max(j.SkipTrue, j.SkipFalse)); end > len(d) {
					t.Errorf("deliveryFilter: instruction %d jumps to %d, past its end %d", i, end, len(d))
				}
			}
		}
		if r, ok := d[len(d)-1].(bpf.RetConstant); !ok || r.Val != 0 {
			t.Errorf("deliveryFilter ends in %v, want ret #0", d[len(d)-1])
		}
	}
	for _, idx := range []int{0, -1, 1 << 31} {
		if _, err := arpFilter(idx, false); err == nil || !strings.HasPrefix(err.Error(), "arpprobe: ") {
			t.Errorf("arpFilter(%d) error = %v, want an arpprobe error", idx, err)
		}
	}
}

// The filter and the frames the other tests build must agree on what an
// ARP frame is; guard the helpers too.
func TestFrameHelpers(t *testing.T) {
	var p arp.Packet
	if err := p.UnmarshalBinary(peerReply(t)[etherHeaderLen:]); err != nil || p.Operation != arp.OperationReply {
		t.Fatalf("peerReply: %+v, %v", p, err)
	}
	if got := len(peerReply(t)); got != 60 {
		t.Errorf("peerReply is %d bytes, want 60", got)
	}
}
