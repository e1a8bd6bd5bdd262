package arpprobe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Limits of a peer list.
const (
	// MaxPrefixAddrs is the most addresses one prefix may name: a /16.
	MaxPrefixAddrs = 1 << 16
	// MaxPeers is the most addresses ParsePeers returns, which bounds the
	// memory a list can take (a few tens of megabytes at most).
	MaxPeers = 1 << 20
)

// ErrBadPeer is wrapped by every error about a malformed peer: not an
// IPv4 address or prefix, an IPv6 address, a prefix that is too large,
// or a list with too many addresses.
var ErrBadPeer = errors.New("bad peer")

// PeerError is a malformed peer, and where it was found. It wraps
// ErrBadPeer.
type PeerError struct {
	File   string // the name given to ParsePeers; empty for ParsePeer
	Line   int    // counting from 1; 0 for ParsePeer
	Text   string // the offending field, cut to 64 bytes
	Reason string // what is wrong with it
}

// Error returns "file:line: " (what of it is known), the offending field
// quoted, and the reason: `peers.txt:3: "198.18.0.300": not an IPv4
// address or prefix`.
func (e *PeerError) Error() string {
	s := ""
	switch {
	case e.File != "" && e.Line > 0:
		s = e.File + ":" + strconv.Itoa(e.Line) + ": "
	case e.File != "":
		s = e.File + ": "
	case e.Line > 0:
		s = "line " + strconv.Itoa(e.Line) + ": "
	}
	if e.Text != "" {
		s += strconv.Quote(e.Text) + ": "
	}
	return s + e.Reason
}

// Unwrap returns ErrBadPeer.
func (e *PeerError) Unwrap() error { return ErrBadPeer }

// maxQuoted is how much of a bad field an error message repeats.
const maxQuoted = 64

func badPeer(text, reason string) *PeerError {
	if len(text) > maxQuoted {
		text = text[:maxQuoted]
	}
	return &PeerError{Text: text, Reason: reason}
}

// ParsePeer parses one peer: an IPv4 address ("198.18.1.2") or an IPv4
// prefix ("198.18.1.0/28", at most MaxPrefixAddrs addresses, no host bits
// set), and returns its addresses in ascending order. The error is a
// *PeerError. ParsePeer is pure and allocates only the result.
func ParsePeer(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	if err := appendPeer(s, func(a netip.Addr) error {
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// appendPeer parses s and calls add with each of its addresses in order;
// it stops at add's first error and returns it.
func appendPeer(s string, add func(netip.Addr) error) error {
	first, last, err := parsePeerRange(s)
	if err != nil {
		return err
	}
	for a := first; ; a = a.Next() {
		if err := add(a); err != nil {
			return err
		}
		if a == last {
			return nil
		}
	}
}

// parsePeerRange returns the first and last address that s names.
func parsePeerRange(s string) (first, last netip.Addr, err error) {
	if strings.IndexByte(s, '/') >= 0 {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return first, last, badPeer(s, notPeer(s))
		}
		if !p.Addr().Is4() {
			return first, last, badPeer(s, "an IPv6 prefix; only IPv4 is checked")
		}
		if n := uint64(1) << (32 - p.Bits()); n > MaxPrefixAddrs {
			return first, last, badPeer(s, fmt.Sprintf("prefix of %d addresses; at most %d (a /16)", n, MaxPrefixAddrs))
		}
		if m := p.Masked(); m != p {
			return first, last, badPeer(s, "host bits set; did you mean "+m.String()+"?")
		}
		first = p.Addr()
		last = lastAddr(p)
		if r := notUnicast(first); r != "" {
			return first, last, badPeer(s, r)
		}
		if r := notUnicast(last); r != "" {
			return first, last, badPeer(s, r)
		}
		return first, last, nil
	}
	a, aerr := netip.ParseAddr(s)
	if aerr != nil {
		return first, last, badPeer(s, notPeer(s))
	}
	if !a.Is4() {
		return first, last, badPeer(s, "an IPv6 address; only IPv4 is checked")
	}
	if r := notUnicast(a); r != "" {
		return first, last, badPeer(s, r)
	}
	return a, a, nil
}

// notPeer explains why s, which does not parse, is not a peer.
func notPeer(s string) string {
	if strings.IndexByte(s, ':') >= 0 {
		if _, err := netip.ParseAddr(strings.SplitN(s, "/", 2)[0]); err == nil {
			return "an IPv6 address; only IPv4 is checked"
		}
	}
	return "not an IPv4 address or prefix"
}

// notUnicast says why a cannot be a peer's address, or returns "".
func notUnicast(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "the unspecified address is not a peer"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address is not a peer"
	case a.IsMulticast():
		return "a multicast address is not a peer"
	}
	return ""
}

// lastAddr returns the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// PeerSet collects the addresses of several peers without repeats, in
// first-seen order, up to MaxPeers. The zero value is empty and ready.
type PeerSet struct {
	addrs []netip.Addr
	seen  map[uint32]struct{}
}

// Add adds the addresses of the peer s (as ParsePeer reads it). On error
// nothing of s is added past the first address beyond MaxPeers; the error
// is a *PeerError.
func (ps *PeerSet) Add(s string) error {
	return appendPeer(s, ps.add)
}

func (ps *PeerSet) add(a netip.Addr) error {
	if ps.seen == nil {
		ps.seen = make(map[uint32]struct{})
	}
	k := ipKey(a)
	if _, ok := ps.seen[k]; ok {
		return nil
	}
	if len(ps.addrs) >= MaxPeers {
		return &PeerError{Reason: fmt.Sprintf("more than %d addresses in all", MaxPeers)}
	}
	ps.seen[k] = struct{}{}
	ps.addrs = append(ps.addrs, a)
	return nil
}

// Addrs returns the addresses added so far, in first-seen order. The
// slice is the set's own: do not modify it while adding.
func (ps *PeerSet) Addrs() []netip.Addr { return ps.addrs }

// Len returns the number of distinct addresses added.
func (ps *PeerSet) Len() int { return len(ps.addrs) }

// AddList adds the peers of a peer list read from r, named name in
// errors (a file name, "stdin"). See ParsePeers for the format.
func (ps *PeerSet) AddList(r io.Reader, name string) error {
	lr := lineReader{r: bufio.NewReaderSize(r, 64<<10)}
	for {
		field, ok, err := lr.next()
		if err != nil {
			return fmt.Errorf("arpprobe: read %s: %w", name, err)
		}
		if !ok {
			return nil
		}
		if len(field) == 0 || field[0] == '#' {
			continue
		}
		if lr.line == 1 {
			field = bytes.TrimPrefix(field, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		if err := ps.Add(string(field)); err != nil {
			var pe *PeerError
			if errors.As(err, &pe) {
				pe.File, pe.Line = name, lr.line
			}
			return err
		}
	}
}

// ParsePeers reads a peer list from r, named name in errors (a file name,
// "stdin"), and returns its addresses without repeats, in first-seen
// order.
//
// Each line holds one peer, an IPv4 address or prefix as ParsePeer reads
// it, as its first whitespace-separated field; the rest of the line is
// ignored, so the output of `ip -4 neigh show` is a valid list. Blank
// lines and lines whose first field starts with '#' are skipped. Lines may
// be of any length and end in "\n" or "\r\n".
//
// The first malformed line stops the parse: the error is a *PeerError
// with name and the line number, and wraps ErrBadPeer. So does a list of
// more than MaxPeers addresses. An error reading r is returned wrapped.
// ParsePeers reads r to the first error or to its end; it takes time and
// memory linear in the input, holding at most a few kilobytes of a line.
func ParsePeers(r io.Reader, name string) ([]netip.Addr, error) {
	var ps PeerSet
	if err := ps.AddList(r, name); err != nil {
		return nil, err
	}
	return ps.Addrs(), nil
}

// maxField is the most bytes of a first field a lineReader keeps: far
// more than the longest peer ("255.255.255.255/32"), enough to quote.
const maxField = 256

// lineReader returns the first field of each line of a reader, whatever
// the length of the line, keeping at most maxField bytes of it.
type lineReader struct {
	r     *bufio.Reader
	line  int // number of the line last returned
	field []byte
	eof   bool
}

// next returns the first field of the next line (empty for a blank
// line), or ok false at the end of the input.
func (lr *lineReader) next() (field []byte, ok bool, err error) {
	if lr.eof {
		return nil, false, nil
	}
	lr.field = lr.field[:0]
	const (
		leading = iota // before the first field
		inField        // in the first field
		rest           // after it, to the end of the line
	)
	state := leading
	read := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(chunk) > 0 {
			read = true
		}
		for i := 0; i < len(chunk) && state != rest; i++ {
			c := chunk[i]
			space := c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
			switch {
			case state == leading && space:
			case state == leading:
				state = inField
				fallthrough
			case state == inField && !space:
				if len(lr.field) < maxField {
					lr.field = append(lr.field, c)
				}
			default:
				state = rest
			}
		}
		switch {
		case err == nil: // the line ended
		case errors.Is(err, bufio.ErrBufferFull):
			continue // a long line: read on
		case errors.Is(err, io.EOF):
			lr.eof = true
			if !read {
				return nil, false, nil
			}
		default:
			return nil, false, err
		}
		lr.line++
		return lr.field, true, nil
	}
}
