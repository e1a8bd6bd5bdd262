package arpprobe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in     string
		want   []netip.Addr
		reason string // substring of the error's reason; "" for success
	}{
		{in: "198.18.1.2", want: addrs("198.18.1.2")},
		{in: "198.18.1.0/30", want: addrs("198.18.1.0", "198.18.1.1", "198.18.1.2", "198.18.1.3")},
		{in: "198.18.1.7/32", want: addrs("198.18.1.7")},
		{in: "198.18.255.254/31", want: addrs("198.18.255.254", "198.18.255.255")},
		{in: "198.18.1.300", reason: "not an IPv4 address or prefix"},
		{in: "198.18.1", reason: "not an IPv4 address or prefix"},
		{in: "198.018.1.2", reason: "not an IPv4 address or prefix"},
		{in: "lladdr", reason: "not an IPv4 address or prefix"},
		{in: "198.18.1.0/33", reason: "not an IPv4 address or prefix"},
		{in: "198.18.1.0/", reason: "not an IPv4 address or prefix"},
		{in: "198.18.1.0/x", reason: "not an IPv4 address or prefix"},
		{in: "198.18.1.2%eth0", reason: "not an IPv4 address or prefix"},
		{in: "fe80::1", reason: "IPv6 address"},
		{in: "::ffff:198.18.1.2", reason: "IPv6 address"},
		{in: "2001:db8::/120", reason: "IPv6 prefix"},
		{in: "2001:db8::/12x", reason: "IPv6 address"},
		{in: "10.0.0.0/8", reason: "prefix of 16777216 addresses; at most 65536"},
		{in: "198.18.0.0/15", reason: "prefix of 131072 addresses"},
		{in: "0.0.0.0/0", reason: "prefix of 4294967296 addresses"},
		{in: "198.18.1.5/28", reason: "host bits set; did you mean 198.18.1.0/28?"},
		{in: "0.0.0.0", reason: "unspecified"},
		{in: "255.255.255.255", reason: "broadcast"},
		{in: "224.0.0.1", reason: "multicast"},
		{in: "239.1.0.0/16", reason: "multicast"},
		{in: "0.0.0.0/24", reason: "unspecified"},
		{in: "", reason: "not an IPv4 address or prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePeer(tt.in)
			if tt.reason == "" {
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ParsePeer(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
				}
				return
			}
			var pe *PeerError
			if !errors.As(err, &pe) || !errors.Is(err, ErrBadPeer) {
				t.Fatalf("ParsePeer(%q) = %v, %v; want a *PeerError wrapping ErrBadPeer", tt.in, got, err)
			}
			if !strings.Contains(pe.Reason, tt.reason) || pe.Text != tt.in || got != nil {
				t.Errorf("ParsePeer(%q) error = %q (text %q); want reason containing %q, text %q", tt.in, err, pe.Text, tt.reason, tt.in)
			}
		})
	}
}

func TestParsePeerLargestPrefix(t *testing.T) {
	got, err := ParsePeer("198.18.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxPrefixAddrs || got[0] != netip.MustParseAddr("198.18.0.0") || got[len(got)-1] != netip.MustParseAddr("198.18.255.255") {
		t.Errorf("ParsePeer(198.18.0.0/16) = %d addresses %v..%v; want %d, 198.18.0.0..198.18.255.255",
			len(got), got[0], got[len(got)-1], MaxPrefixAddrs)
	}
}

func TestParsePeers(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []netip.Addr
		line int    // of the error; 0 for success
		text string // the error's Text
	}{
		{name: "empty", in: "", want: nil},
		{name: "one line, no newline", in: "198.18.0.2", want: addrs("198.18.0.2")},
		{name: "blank lines and comments", in: "\n# peers\n  \n\t# indented comment\n198.18.0.2\n\n",
			want: addrs("198.18.0.2")},
		{name: "rest of the line ignored", in: "198.18.0.2 web server\n198.18.0.3\t# db\n",
			want: addrs("198.18.0.2", "198.18.0.3")},
		{name: "ip -4 neigh show output", in: "198.18.0.2 dev lan0 lladdr 02:00:00:00:00:02 STALE\n" +
			"198.18.0.3 dev lan0 FAILED\n198.18.0.4 dev lan0 lladdr 02:00:00:00:00:04 PERMANENT\n",
			want: addrs("198.18.0.2", "198.18.0.3", "198.18.0.4")},
		{name: "CRLF line ends", in: "198.18.0.2\r\n198.18.0.3\r\n", want: addrs("198.18.0.2", "198.18.0.3")},
		{name: "leading whitespace", in: "   198.18.0.2\n\t198.18.0.3", want: addrs("198.18.0.2", "198.18.0.3")},
		{name: "byte order mark", in: "\xef\xbb\xbf198.18.0.2\n", want: addrs("198.18.0.2")},
		{name: "duplicates removed in first-seen order", in: "198.18.0.3\n198.18.0.0/30\n198.18.0.1\n",
			want: addrs("198.18.0.3", "198.18.0.0", "198.18.0.1", "198.18.0.2")},
		{name: "bad address names its line", in: "198.18.0.2\n\n# x\n198.18.1.300 web\n198.18.0.3\n",
			line: 4, text: "198.18.1.300"},
		{name: "IPv6 line of ip neigh show", in: "198.18.0.2 dev lan0 lladdr 02:00:00:00:00:02 STALE\nfe80::1 dev lan0 lladdr 02:00:00:00:00:02 router STALE\n",
			line: 2, text: "fe80::1"},
		{name: "prefix too large", in: "198.18.0.2\n10.0.0.0/8\n", line: 2, text: "10.0.0.0/8"},
		{name: "binary garbage", in: "198.18.0.2\n\x00\x01\xff\xfe\x7f\n", line: 2, text: "\x00\x01\xff\xfe\x7f"},
		{name: "comment only after a field", in: "198.18.0.2#x\n", line: 1, text: "198.18.0.2#x"},
		{name: "last line without newline", in: "198.18.0.2\n198.18.0.x", line: 2, text: "198.18.0.x"},
		{name: "long field is cut in the message", in: strings.Repeat("9", 1000) + "\n", line: 1,
			text: strings.Repeat("9", maxQuoted)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePeers(strings.NewReader(tt.in), "peers.txt")
			if tt.line == 0 {
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ParsePeers = %v, %v; want %v, nil", got, err, tt.want)
				}
				return
			}
			var pe *PeerError
			if !errors.As(err, &pe) || !errors.Is(err, ErrBadPeer) {
				t.Fatalf("ParsePeers = %v, %v; want a *PeerError wrapping ErrBadPeer", got, err)
			}
			if pe.File != "peers.txt" || pe.Line != tt.line || pe.Text != tt.text {
				t.Errorf("error %q at %s:%d text %q; want peers.txt:%d text %q", err, pe.File, pe.Line, pe.Text, tt.line, tt.text)
			}
			if prefix := fmt.Sprintf("peers.txt:%d: %q: ", tt.line, tt.text); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q; want it to start with %q", err, prefix)
			}
		})
	}
}

func TestParsePeersMessage(t *testing.T) {
	_, err := ParsePeers(strings.NewReader("198.18.1.2\n198.18.1.300\n"), "peers.txt")
	want := `peers.txt:2: "198.18.1.300": not an IPv4 address or prefix`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v; want %s", err, want)
	}
}

// A line far longer than bufio's default buffer, before and after the
// first field, neither hides the field nor breaks the lines after it.
func TestParsePeersLongLines(t *testing.T) {
	in := "198.18.0.2 " + strings.Repeat("x", 200_000) + "\n" +
		strings.Repeat(" ", 100_000) + "198.18.0.3 trailing\n" +
		strings.Repeat("#", 100_000) + "\n" +
		"198.18.0.4\n" +
		strings.Repeat("9", 100_000) + "\n"
	got, err := ParsePeers(strings.NewReader(in), "long.txt")
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Line != 5 {
		t.Fatalf("ParsePeers = %v, %v; want an error on line 5", got, err)
	}
	got, err = ParsePeers(strings.NewReader(strings.TrimSuffix(in, strings.Repeat("9", 100_000)+"\n")), "long.txt")
	if want := addrs("198.18.0.2", "198.18.0.3", "198.18.0.4"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePeers = %v, %v; want %v", got, err, want)
	}
}

// Reading in tiny pieces gives the same result as reading at once.
func TestParsePeersShortReads(t *testing.T) {
	in := "198.18.0.2 dev lan0\r\n# c\n\n  198.18.0.4/31 x\n198.18.0.2\n"
	got, err := ParsePeers(iotest.OneByteReader(strings.NewReader(in)), "x")
	if want := addrs("198.18.0.2", "198.18.0.4", "198.18.0.5"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePeers = %v, %v; want %v", got, err, want)
	}
}

func TestParsePeersReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ParsePeers(io.MultiReader(strings.NewReader("198.18.0.2\n"), iotest.ErrReader(boom)), "peers.txt")
	if !errors.Is(err, boom) || errors.Is(err, ErrBadPeer) || !strings.Contains(err.Error(), "peers.txt") {
		t.Errorf("ParsePeers = %v; want the read error, naming the file, not ErrBadPeer", err)
	}
}

func TestParsePeersTooMany(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxPeers/MaxPrefixAddrs; i++ {
		fmt.Fprintf(&b, "10.%d.0.0/16\n", i)
	}
	got, err := ParsePeers(strings.NewReader(b.String()), "big")
	if err != nil || len(got) != MaxPeers {
		t.Fatalf("ParsePeers of exactly MaxPeers = %d addresses, %v; want %d, nil", len(got), err, MaxPeers)
	}
	b.WriteString("10.200.0.0/16\n198.18.0.2\n")
	_, err = ParsePeers(strings.NewReader(b.String()), "big")
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Line != MaxPeers/MaxPrefixAddrs+1 || !strings.Contains(pe.Reason, "more than") {
		t.Errorf("ParsePeers of more than MaxPeers = %v; want a *PeerError on line %d", err, MaxPeers/MaxPrefixAddrs+1)
	}
}

// A 100,000-line list with one bad line at the end fails on that line.
func TestParsePeersBigFileBadLastLine(t *testing.T) {
	in := bigPeerList(100_000) + "198.18.1.300\n"
	_, err := ParsePeers(strings.NewReader(in), "big.txt")
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Line != 100_001 {
		t.Errorf("ParsePeers = %v; want an error on line 100001", err)
	}
}

// bigPeerList returns n lines in the form of `ip -4 neigh show`, with
// distinct addresses from 10.0.0.0/8.
func bigPeerList(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "10.%d.%d.%d dev eth0 lladdr 02:00:00:00:00:01 STALE\n", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return b.String()
}

func BenchmarkParsePeers(b *testing.B) {
	in := []byte(bigPeerList(100_000))
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParsePeers(bytes.NewReader(in), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParsePeers checks that ParsePeers never panics, that every error is
// a *PeerError naming a line of the input, and that what it accepts reads
// back as itself. Seeds: the inputs below, and the peer lists (ip neigh
// show output, comments, CRLF, prefixes, garbage) in
// testdata/fuzz/FuzzParsePeers.
func FuzzParsePeers(f *testing.F) {
	for _, s := range []string{
		"",
		"198.18.0.2\n",
		"198.18.0.0/30\n198.18.0.1 dup\n",
		"# comment\n\n  198.18.0.2 dev lan0 lladdr 02:00:00:00:00:02 STALE\r\n",
		"198.18.1.300\n",
		"fe80::1 dev lan0\n",
		"10.0.0.0/8\n",
		"198.18.1.5/28\n",
		"\x00\xff\xfe\n198.18.0.2",
		"\xef\xbb\xbf198.18.0.2\n",
		"198.18.0.2" + strings.Repeat(" ", 5000) + "x\n198.18.0.3",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParsePeers(bytes.NewReader(in), "fuzz")
		lines := bytes.Count(in, []byte("\n")) + 1
		if err != nil {
			var pe *PeerError
			if !errors.As(err, &pe) || !errors.Is(err, ErrBadPeer) {
				t.Fatalf("error %v is not a *PeerError wrapping ErrBadPeer", err)
			}
			if pe.File != "fuzz" || pe.Line < 1 || pe.Line > lines || len(pe.Text) > maxQuoted {
				t.Fatalf("error %v: file %q line %d of %d, text of %d bytes", err, pe.File, pe.Line, lines, len(pe.Text))
			}
			if got != nil {
				t.Fatalf("ParsePeers returned %d addresses with an error", len(got))
			}
			return
		}
		if len(got) > MaxPeers {
			t.Fatalf("%d addresses, more than MaxPeers", len(got))
		}
		seen := make(map[netip.Addr]bool)
		for _, a := range got {
			if !a.Is4() || seen[a] || notUnicast(a) != "" {
				t.Fatalf("address %v: not IPv4, repeated or not unicast", a)
			}
			seen[a] = true
		}
		// The addresses, one per line, read back as themselves.
		var b bytes.Buffer
		for _, a := range got {
			b.WriteString(a.String() + "\n")
		}
		again, err := ParsePeers(&b, "again")
		if err != nil || len(again) != len(got) || (len(got) > 0 && !reflect.DeepEqual(again, got)) {
			t.Fatalf("round trip: %v, %v; want %v", again, err, got)
		}
	})
}
