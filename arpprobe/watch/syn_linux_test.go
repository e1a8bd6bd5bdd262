package watch

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// synFrame builds an Ethernet frame carrying an IPv4 TCP segment from
// src (MAC 02:..:07) with the given TCP flags and fragment field.
func synFrame(src netip.Addr, proto byte, flags byte, frag uint16) []byte {
	b := make([]byte, 14+20+20)
	copy(b[0:6], []byte{0x02, 0, 0, 0, 0, 0x01})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 0x07})
	b[12], b[13] = 0x08, 0x00
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], 20+20) // total length
	binary.BigEndian.PutUint16(ip[6:8], frag)
	ip[8] = 64 // TTL
	ip[9] = proto
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], []byte{198, 18, 0, 1})
	// A valid header: a bridge that hands frames to netfilter
	// (br_netfilter) drops the others.
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	ip[20+12] = 5 << 4 // TCP data offset
	ip[20+13] = flags
	return b
}

// TestSYNFilterAndParse: the kernel filter and the parser agree on what
// opens a TCP connection, and the parser gives its sender.
func TestSYNFilterAndParse(t *testing.T) {
	prog, err := synFilter()
	if err != nil {
		t.Fatal(err)
	}
	insns := make([]bpf.Instruction, len(prog))
	for i, r := range prog {
		insns[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("198.18.0.2")
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"SYN", synFrame(src, 6, 0x02, 0), true},
		{"SYN with DF", synFrame(src, 6, 0x02, 0x4000), true},
		{"SYN-ACK", synFrame(src, 6, 0x12, 0), false},
		{"ACK", synFrame(src, 6, 0x10, 0), false},
		{"UDP", synFrame(src, 17, 0x02, 0), false},
		{"a later fragment", synFrame(src, 6, 0x02, 0x0010), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != tt.want {
				t.Errorf("filter passes %d bytes; want passed %v", n, tt.want)
			}
			mac, ip, ok := parseSYN(tt.frame)
			if ok != tt.want || ok && (ip != src || mac != [6]byte{0x02, 0, 0, 0, 0, 0x07}) {
				t.Errorf("parseSYN = %v %v %v; want ok %v from %s", mac, ip, ok, tt.want, src)
			}
		})
	}
}

// TestOnSubnet: only senders of the interface's own subnets count; a
// frame routed in from elsewhere carries the router's MAC.
func TestOnSubnet(t *testing.T) {
	prefixes := []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("198.18.9.5/32")}
	for ip, want := range map[string]bool{
		"198.18.0.2": true, "198.18.0.1": false, "198.19.0.9": false, "198.18.9.6": false, "198.18.9.5": false,
	} {
		if got := onSubnet(netip.MustParseAddr(ip), prefixes); got != want {
			t.Errorf("onSubnet(%s) = %v; want %v", ip, got, want)
		}
	}
}
