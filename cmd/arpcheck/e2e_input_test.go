package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// A malformed peer stops verify and repair before a single frame is
// sent or an entry touched: exit 3, and the message names the file and
// line.
func TestE2EMalformedInput(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	dir := t.TempDir()
	good := okIP.String() + " dev lan0 lladdr " + netns.HostMAC(1).String() + " STALE\n" + staleIP.String() + "\n"
	var big strings.Builder
	for i := 0; i < 100_000; i++ {
		fmt.Fprintf(&big, "198.18.%d.%d\n", 2+i/250%2, 2+i%250) // valid, mostly repeats
	}
	big.WriteString("198.18.1.300\n")
	tests := []struct {
		name    string
		content string
		stdin   bool
		msg     string // the whole first line of stderr after "arpcheck: FILE:"
	}{
		{name: "bad address", content: good + "\n# x\n198.18.1.300 web\n",
			msg: `5: "198.18.1.300": not an IPv4 address or prefix`},
		{name: "IPv6 address", content: good + "fe80::1 dev lan0 lladdr 02:00:00:00:00:01 router STALE\n",
			msg: `3: "fe80::1": an IPv6 address; only IPv4 is checked`},
		{name: "a /8", content: "198.0.0.0/8\n" + good,
			msg: `1: "198.0.0.0/8": prefix of 16777216 addresses; at most 65536 (a /16)`},
		{name: "binary garbage", content: good + "\x7fELF\x02\x01\x01\x00\x00\x00\n",
			msg: `3: "\x7fELF\x02\x01\x01\x00\x00\x00": not an IPv4 address or prefix`},
		{name: "binary garbage on stdin", content: good + "\xff\xfe\x00\x01 x\n", stdin: true,
			msg: `3: "\xff\xfe\x00\x01": not an IPv4 address or prefix`},
		{name: "100,000 lines and a bad one at the end", content: big.String(),
			msg: `100001: "198.18.1.300": not an IPv4 address or prefix`},
	}
	for _, tt := range tests {
		for _, command := range []string{"verify", "repair"} {
			t.Run(tt.name+"/"+command, func(t *testing.T) {
				path := filepath.Join(dir, strings.NewReplacer(" ", "_", "/", "_").Replace(tt.name)+".txt")
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
				inv := args(command, "--peers", path)
				name := path
				if tt.stdin {
					inv = args(command, "--peers", "-")
					inv.stdin, name = tt.content, "stdin"
				}
				table, frames := l.table(), l.framesSent()
				o := arpcheck(t, l.Prober, inv)
				want := "arpcheck: " + name + ":" + tt.msg + "\n"
				if o.status != exitUnknown || o.stderr != want || o.stdout != "" {
					t.Errorf("want exit 3, nothing on stdout and stderr %q\n%s", want, o)
				}
				if n := l.framesSent(); n != frames {
					t.Errorf("%d frames sent; want none", n-frames)
				}
				if after := l.table(); !maps.Equal(after, table) {
					t.Errorf("table changed:\n%v\nwas\n%v", after, table)
				}
			})
		}
	}
	// The frame count works: a good list is probed.
	frames := l.framesSent()
	if o := arpcheck(t, l.Prober, args("verify", okIP.String())); o.status != exitOK {
		t.Errorf("verify %s: want exit 0\n%s", okIP, o)
	}
	if l.framesSent() == frames {
		t.Error("a good run sent no frame that the switch counted; the counts above prove nothing")
	}
}

// A held --lock ends the run at once: exit 3, nothing sent.
func TestE2ELockHeld(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	path := filepath.Join(t.TempDir(), "arpcheck.lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	frames := l.framesSent()
	o := arpcheck(t, l.Prober, args("repair", "-q", "--lock", path, staleIP.String()))
	want := "arpcheck: another run holds the lock " + path + "; not checking twice at once\n"
	if o.status != exitUnknown || o.stderr != want || o.stdout != "" {
		t.Errorf("want exit 3 and stderr %q\n%s", want, o)
	}
	if n := l.framesSent(); n != frames {
		t.Errorf("%d frames sent while the lock was held; want none", n-frames)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if o := arpcheck(t, l.Prober, args("verify", "-q", "--lock", path, okIP.String())); o.status != exitOK {
		t.Errorf("with the lock free: want exit 0\n%s", o)
	}
}

// SIGINT and SIGTERM end a run early: the report is printed with the
// unfinished peers unknown, exit 3.
func TestE2EInterrupt(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			l := newLab(t, netlink.NUD_PERMANENT)
			frames := l.framesSent()
			cmd, stdout, stderr := start(t, l.Prober, args("verify", "--format", "json", "--timeout", "1m",
				okIP.String(), deadIP.String()))
			// Once the first frame is on the wire, arpcheck is probing.
			for began := time.Now(); l.framesSent() == frames; time.Sleep(5 * time.Millisecond) {
				if time.Since(began) > time.Minute {
					cmd.Process.Kill()
					t.Fatalf("arpcheck sent nothing in a minute\n%s", finish(t, cmd, stdout, stderr))
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			o := finish(t, cmd, stdout, stderr)
			if o.status != exitUnknown || !strings.Contains(o.stderr, "interrupted") {
				t.Errorf("want exit 3 and a word about the interruption\n%s", o)
			}
			r := parseJSON(t, o)
			if p := r.Peers[r.peer(t, deadIP)]; p.Verdict != "unknown" || !strings.Contains(p.Reason, "canceled") {
				t.Errorf("%s: verdict %s (%q); want unknown, canceled", deadIP, p.Verdict, p.Reason)
			}
		})
	}
}
