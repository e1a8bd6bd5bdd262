package arpprobe

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapRecord is one frame read back from a capture.
type pcapRecord struct {
	t     time.Time
	frame []byte
}

// readPcap reads every frame of a classic pcap capture.
func readPcap(t testing.TB, r io.Reader) []pcapRecord {
	t.Helper()
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		t.Fatalf("pcapgo.NewReader: %v", err)
	}
	if pr.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v; want Ethernet", pr.LinkType())
	}
	var out []pcapRecord
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read frame %d: %v", len(out)+1, err)
		}
		if ci.CaptureLength != ci.Length {
			t.Errorf("frame %d: captured %d of %d bytes; want it whole", len(out)+1, ci.CaptureLength, ci.Length)
		}
		out = append(out, pcapRecord{ci.Timestamp, data})
	}
}

func TestPcapWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	empty := readPcap(t, bytes.NewReader(buf.Bytes()))
	if len(empty) != 0 {
		t.Fatalf("a new capture holds %d frames; want a header only", len(empty))
	}
	base := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	frames := [][]byte{
		selfRequest(t)[:42],
		peerReply(t),                 // padded to 60
		peerReply(t)[:30],            // truncated: recorded as received
		make([]byte, maxFrameBuffer), // the longest a read gives
	}
	tap := w.Tap()
	for i, f := range frames {
		tap(TapEvent{Ifindex: 2, Time: base.Add(time.Duration(i) * time.Millisecond), Sent: i == 0, Frame: f})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Frames() != len(frames) {
		t.Errorf("Frames() = %d; want %d", w.Frames(), len(frames))
	}
	got := readPcap(t, &buf)
	if len(got) != len(frames) {
		t.Fatalf("read %d frames; want %d", len(got), len(frames))
	}
	for i, r := range got {
		want := base.Add(time.Duration(i) * time.Millisecond)
		if !r.t.Equal(want) {
			t.Errorf("frame %d: time %v; want %v (microseconds kept)", i, r.t, want)
		}
		if !bytes.Equal(r.frame, frames[i]) {
			t.Errorf("frame %d:\n got % x\nwant % x", i, r.frame, frames[i])
		}
	}
}

func TestPcapWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			f := make([]byte, 42+g) // each goroutine's frames have their own length and filling
			for i := range f {
				f[i] = byte(g)
			}
			for range each {
				w.Tap()(TapEvent{Time: time.Now(), Frame: f})
			}
		})
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := readPcap(t, &buf)
	if len(got) != goroutines*each {
		t.Fatalf("read %d frames; want %d", len(got), goroutines*each)
	}
	perG := map[int]int{}
	for i, r := range got {
		g := len(r.frame) - 42
		if g < 0 || g >= goroutines || !bytes.Equal(r.frame, bytes.Repeat([]byte{byte(g)}, len(r.frame))) {
			t.Fatalf("frame %d is interleaved or damaged: % x", i, r.frame)
		}
		perG[g]++
	}
	for g := range goroutines {
		if perG[g] != each {
			t.Errorf("goroutine %d: %d frames recorded; want %d", g, perG[g], each)
		}
	}
}

// failWriter accepts n bytes, then fails every write.
type failWriter struct {
	n   int
	err error
}

func (f *failWriter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(b)
	return len(b), nil
}

func TestPcapWriterErrors(t *testing.T) {
	errDisk := errors.New("disk full")
	if _, err := NewPcapWriter(&failWriter{n: 10, err: errDisk}); !errors.Is(err, errDisk) {
		t.Errorf("NewPcapWriter on a failing writer: %v; want the write error", err)
	}

	// Room for the header and a little more: the buffered frames fail
	// when flushed, and so does everything after.
	w, err := NewPcapWriter(&failWriter{n: 24 + 100, err: errDisk})
	if err != nil {
		t.Fatal(err)
	}
	tap := w.Tap()
	for range 5000 { // far more than the buffer holds: the error comes mid-run
		tap(TapEvent{Time: time.Now(), Frame: peerReply(t)})
	}
	if err := w.Err(); !errors.Is(err, errDisk) || !strings.HasPrefix(err.Error(), "arpprobe: pcap:") {
		t.Errorf("Err() = %v; want the disk error, prefixed", err)
	}
	n := w.Frames()
	if n == 0 || n >= 5000 {
		t.Errorf("%d frames counted as recorded; want some, not all", n)
	}
	tap(TapEvent{Time: time.Now(), Frame: peerReply(t)})
	if w.Frames() != n {
		t.Errorf("a frame was recorded after the error")
	}
	if err := w.Flush(); !errors.Is(err, errDisk) {
		t.Errorf("Flush() = %v; want the first error", err)
	}
}

// recordConn is a FrameConn that reads given frames, records writes,
// fails writes on demand and reports kernel drops.
type recordConn struct {
	rx       [][]byte
	writes   [][]byte
	writeErr error
	drops    uint64
}

func (c *recordConn) ReadFrame(b []byte) (int, error) {
	if len(c.rx) == 0 {
		return 0, net.ErrClosed
	}
	n := copy(b, c.rx[0])
	c.rx = c.rx[1:]
	return n, nil
}

func (c *recordConn) WriteFrame(b []byte) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.writes = append(c.writes, bytes.Clone(b))
	return nil
}

func (c *recordConn) SetReadDeadline(time.Time) error { return nil }
func (c *recordConn) Close() error                    { return nil }
func (c *recordConn) KernelDrops() (uint64, error)    { return c.drops, nil }

func TestPcapWriterListener(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	inner := &recordConn{rx: [][]byte{peerReply(t)[:42]}, drops: 7}
	listen := w.Listener(func(*net.Interface) (FrameConn, error) { return inner, nil })
	c, err := listen(&net.Interface{Index: 2, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	req := selfRequest(t)
	if err := c.WriteFrame(req); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, maxFrameBuffer)
	if _, err := c.ReadFrame(b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadFrame(b); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second read: %v; want the conn's error", err)
	}
	inner.writeErr = errors.New("no room")
	if err := c.WriteFrame(req); err == nil {
		t.Fatal("failed write reported no error")
	}
	if d, err := c.(FrameConnStats).KernelDrops(); d != 7 || err != nil {
		t.Errorf("KernelDrops() = %d, %v; want the wrapped conn's 7", d, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := readPcap(t, &buf)
	if len(got) != 2 || !bytes.Equal(got[0].frame, req) || !bytes.Equal(got[1].frame, peerReply(t)[:42]) {
		t.Errorf("captured %d frames; want the request written and the reply read, not the failed write", len(got))
	}

	// A conn without statistics says so rather than inventing zero.
	plain := w.Listener(func(*net.Interface) (FrameConn, error) { return struct{ FrameConn }{&fakeConn{}}, nil })
	c2, _ := plain(&net.Interface{Index: 2})
	if _, err := c2.(FrameConnStats).KernelDrops(); err == nil {
		t.Error("KernelDrops of a conn without statistics: no error")
	}

	failing := w.Listener(func(*net.Interface) (FrameConn, error) { return nil, os.ErrPermission })
	if _, err := failing(&net.Interface{Index: 2}); !errors.Is(err, os.ErrPermission) {
		t.Errorf("Listener passed on %v; want the listen error", err)
	}
}

// TestPcapOfACheck records a whole check through the Prober's tap: the
// capture holds every frame sent and every frame received, junk included.
func TestPcapOfACheck(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tbl := oneLAN(*entry(macA, StateStale))
	lan := &fakeLAN{}
	lan.add(peerIP, macB, 0)
	me := net.HardwareAddr{2, 0, 0, 0, 0xff, 2}
	junk := replyFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.MustParseAddr(peerIP), me, netip.MustParseAddr("198.18.0.1"))
	lan.onSend = func(Frame) { lan.inject(junk) }
	cfg := lan.config()
	cfg.Tap = w.Tap()
	p := NewProber(cfg)
	defer p.Close()
	c := Checker{Table: tbl, Topology: tbl, Prober: p}
	rep, err := c.Check(t.Context(), []netip.Addr{netip.MustParseAddr(peerIP)}, Options{Probe: fastOpts(BroadcastAuto)})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Peers[0]; p.Verdict != VerdictStale {
		t.Fatalf("verdict %s; want stale", p.Verdict)
	}
	p.Close() // the reader has returned: every received frame is tapped
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := readPcap(t, bytes.NewReader(buf.Bytes()))
	sent, recv := 0, 0
	for _, r := range got {
		f, err := ParseFrame(r.frame)
		switch {
		case err == nil && f.Op == opRequest && f.SenderMAC == [6]byte(me):
			sent++
		default:
			recv++
		}
	}
	st := rep.Stats
	if sent != int(st.SentUnicast+st.SentBroadcast) {
		t.Errorf("capture has %d requests; the run sent %d", sent, st.SentUnicast+st.SentBroadcast)
	}
	if recv < int(st.Received) || recv == 0 {
		t.Errorf("capture has %d received frames; the run received %d", recv, st.Received)
	}
	for i := 1; i < len(got); i++ {
		if got[i].t.Before(got[i-1].t.Add(-time.Millisecond)) {
			t.Errorf("frame %d at %v is well before frame %d at %v", i, got[i].t, i-1, got[i-1].t)
		}
	}
	// The capture itself is valid for the tools people use.
	path := filepath.Join(t.TempDir(), "check.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	checkWithTools(t, path, len(got))
}

// needTool returns the path of a program the test needs. In CI (CI=true)
// a missing tool fails the test, since CI installs them; elsewhere the
// test is skipped.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// checkWithTools reads a capture with tshark and tcpdump and checks that
// both read every frame as ARP, as many as written.
func checkWithTools(t *testing.T, path string, frames int) {
	t.Helper()
	t.Run("tshark", func(t *testing.T) {
		tshark := needTool(t, "tshark")
		cmd := exec.Command(tshark, "-n", "-r", path, "-T", "fields", "-e", "frame.protocols", "-e", "arp.opcode")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // where tshark warns about running as root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark -r: %v\n%s%s", err, out, stderr.Bytes())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		arp := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "eth:ethertype:arp") {
				arp++
			}
		}
		if len(lines) != frames || arp != frames {
			t.Errorf("tshark read %d frames, %d of them ARP; want %d\n%s", len(lines), arp, frames, out)
		}
	})
	t.Run("tcpdump", func(t *testing.T) {
		tcpdump := needTool(t, "tcpdump")
		out, err := exec.Command(tcpdump, "-n", "-r", path).CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
		n := strings.Count(string(out), "ARP, ")
		if n != frames {
			t.Errorf("tcpdump printed %d ARP lines for %d frames\n%s", n, frames, out)
		}
	})
}
