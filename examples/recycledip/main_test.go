package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// The whole scenario, as `go run ./examples/recycledip` plays it: the
// verdicts, the repairs, and the connects before and after.
func TestScenario(t *testing.T) {
	netns.Require(t)
	fds := netns.OpenFDs(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf bytes.Buffer
	out, err := play(ctx, &buf)
	t.Logf("output:\n%s", buf.String())
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	if got := netns.OpenFDs(t); got != fds {
		t.Errorf("after play: %d namespace fds open; want %d (the lab was not torn down)", got, fds)
	}

	web, app, db, dead := peers[0], peers[1], peers[2], peers[3]

	// Verify: the verdicts come from the snapshot taken before any frame
	// was sent, so they do not depend on what the kernel does meanwhile.
	verify := byIP(t, out.verify)
	for _, tt := range []struct {
		peer    peer
		verdict arpprobe.Verdict
		state   arpprobe.State // of the cached entry
		owner   net.HardwareAddr
	}{
		{web, arpprobe.VerdictOK, 0, web.owner},
		{app, arpprobe.VerdictStale, 0, app.owner},
		{db, arpprobe.VerdictStale, arpprobe.StatePermanent, db.owner},
		{dead, arpprobe.VerdictDead, 0, nil},
	} {
		p := verify[tt.peer.addr]
		if p == nil {
			t.Errorf("verify: no peer %s", tt.peer.addr)
			continue
		}
		if p.Verdict != tt.verdict || !bytes.Equal(p.Owner, tt.owner) {
			t.Errorf("verify %s: verdict %s, owner %v; want %s, %v", p.IP, p.Verdict, p.Owner, tt.verdict, tt.owner)
		}
		if p.Action != arpprobe.ActionNone {
			t.Errorf("verify %s: action %s; want none", p.IP, p.Action)
		}
		if p.Cached == nil || !bytes.Equal(p.Cached.MAC, tt.peer.cached) {
			t.Errorf("verify %s: cached %v; want MAC %s", p.IP, p.Cached, tt.peer.cached)
		} else if tt.state != 0 && p.Cached.State != tt.state {
			t.Errorf("verify %s: cached state %s; want %s", p.IP, p.Cached.State, tt.state)
		}
	}
	if len(out.verify.Peers) != len(peers) {
		t.Errorf("verify checked %d peers; want %d (every entry of the client's cache)", len(out.verify.Peers), len(peers))
	}
	// Verify writes nothing: what the kernel cannot heal stays as it was.
	if p := verify[db.addr]; p != nil && !sameEntry(p.After, db.cached, arpprobe.StatePermanent) {
		t.Errorf("verify changed the PERMANENT entry of %s: now %v", db.addr, p.After)
	}
	if p := verify[dead.addr]; p != nil && (p.After == nil || !bytes.Equal(p.After.MAC, dead.cached)) {
		t.Errorf("verify changed the entry of dead %s: now %v", dead.addr, p.After)
	}

	// Repair.
	repair := byIP(t, out.repair)
	if p := repair[db.addr]; p == nil || p.Verdict != arpprobe.VerdictStale || p.Action != arpprobe.ActionReplaced ||
		!sameEntry(p.After, db.owner, arpprobe.StatePermanent) {
		t.Errorf("repair %s: %+v; want stale, replaced, after %s PERMANENT", db.addr, p, db.owner)
	}
	if p := repair[dead.addr]; p == nil || p.Verdict != arpprobe.VerdictDead || p.Action != arpprobe.ActionDeleted || p.After != nil {
		t.Errorf("repair %s: %+v; want dead, deleted, no entry after", dead.addr, p)
	}
	if p := repair[web.addr]; p == nil || p.Verdict != arpprobe.VerdictOK || p.Action != arpprobe.ActionNone {
		t.Errorf("repair %s: %+v; want ok, none", web.addr, p)
	}
	// The recycled STALE entry: the kernel may have taken the owner's
	// reply during verify (then it is ok now), or repair replaced it, or
	// found it healed between its snapshot and its write.
	if p := repair[app.addr]; p == nil {
		t.Errorf("repair: no peer %s", app.addr)
	} else {
		switch {
		case p.Verdict == arpprobe.VerdictOK && p.Action == arpprobe.ActionNone:
			if v := verify[app.addr]; v != nil && (v.After == nil || !bytes.Equal(v.After.MAC, app.owner)) {
				t.Errorf("repair %s: ok, but verify did not leave it at %s: %v", app.addr, app.owner, v.After)
			}
		case p.Verdict == arpprobe.VerdictStale && (p.Action == arpprobe.ActionReplaced || p.Action == arpprobe.ActionHealed):
		default:
			t.Errorf("repair %s: verdict %s, action %s (%s); want ok/none, stale/replaced or stale/healed", app.addr, p.Verdict, p.Action, p.Reason)
		}
		if p.After == nil || !bytes.Equal(p.After.MAC, app.owner) {
			t.Errorf("repair %s: after %v; want MAC %s", app.addr, p.After, app.owner)
		}
	}

	// The cache read independently at the end agrees.
	final := map[netip.Addr]arpprobe.Neighbor{}
	for _, n := range out.cacheAfter {
		if n.Interface == netns.LANIface {
			final[n.IP] = n
		}
	}
	for _, p := range []peer{web, app, db} {
		if n, ok := final[p.addr]; !ok || !bytes.Equal(n.MAC, p.owner) {
			t.Errorf("cache after: %s is %v; want %s", p.addr, n, p.owner)
		}
	}
	if n, ok := final[dead.addr]; ok {
		t.Errorf("cache after: %s still there: %v", dead.addr, n)
	}

	// The connects: web works throughout; the recycled addresses fail
	// before and reach the new instance after.
	wantBefore := map[netip.Addr]bool{web.addr: true, app.addr: false, db.addr: false}
	checkDials(t, "before", out.before, wantBefore)
	checkDials(t, "after", out.after, map[netip.Addr]bool{web.addr: true, app.addr: true, db.addr: true})
	for _, d := range out.after {
		for _, p := range peers {
			if p.addr == d.to.Addr() && d.err == nil && !strings.Contains(d.banner, p.owner.String()) {
				t.Errorf("after: %s answered %q; want the new owner %s", d.to, d.banner, p.owner)
			}
		}
	}

	for _, s := range []string{"stale", "dead", "replaced", "deleted", "Tear down"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("output does not mention %q", s)
		}
	}
}

// Cancelling the run tears the lab down too.
func TestScenarioCancelled(t *testing.T) {
	netns.Require(t)
	fds := netns.OpenFDs(t)
	for _, after := range []time.Duration{0, 200 * time.Millisecond, 1500 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), after)
		var buf bytes.Buffer
		err := run(ctx, &buf)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("run cancelled after %v: error %v; want context.DeadlineExceeded\n%s", after, err, buf.String())
		}
		if got := netns.OpenFDs(t); got != fds {
			t.Errorf("run cancelled after %v: %d namespace fds open; want %d", after, got, fds)
		}
	}
}

func checkDials(t *testing.T, when string, ds []dialResult, want map[netip.Addr]bool) {
	t.Helper()
	if len(ds) != len(want) {
		t.Errorf("%s: %d connects; want %d", when, len(ds), len(want))
	}
	for _, d := range ds {
		if ok := d.err == nil; ok != want[d.to.Addr()] {
			t.Errorf("%s: connect to %s worked=%v (err %v); want %v", when, d.to, ok, d.err, want[d.to.Addr()])
		}
	}
}

func byIP(t *testing.T, rep *arpprobe.Report) map[netip.Addr]*arpprobe.Peer {
	t.Helper()
	if rep == nil {
		t.Fatal("no report")
	}
	m := map[netip.Addr]*arpprobe.Peer{}
	for i := range rep.Peers {
		m[rep.Peers[i].IP] = &rep.Peers[i]
	}
	return m
}

func sameEntry(n *arpprobe.Neighbor, mac net.HardwareAddr, state arpprobe.State) bool {
	return n != nil && bytes.Equal(n.MAC, mac) && n.State == state
}

// -hold keeps the broken LAN up, prints a way into the client's namespace
// that works while it waits, and tears everything down when cancelled.
func TestHold(t *testing.T) {
	netns.Require(t)
	fds := netns.OpenFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := hold(ctx, w)
		w.CloseWithError(err)
		done <- err
	}()

	var nsPath string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := regexp.MustCompile(`nsenter --net=(/proc/\d+/task/\d+/ns/net) arpcheck verify`).FindStringSubmatch(sc.Text()); m != nil {
			nsPath = m[1]
			break
		}
	}
	if nsPath == "" {
		t.Fatalf("hold printed no nsenter line (%v)", sc.Err())
	}
	go io.Copy(io.Discard, r)
	inside, err := os.Readlink(nsPath)
	if err != nil {
		t.Fatalf("the printed namespace path: %v", err)
	}
	ours, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if inside == ours || !strings.HasPrefix(inside, "net:[") {
		t.Errorf("%s is %s; want a network namespace other than ours (%s)", nsPath, inside, ours)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("hold: %v", err)
	}
	if got := netns.OpenFDs(t); got != fds {
		t.Errorf("after hold: %d namespace fds open; want %d", got, fds)
	}
	// The parked thread has left the namespace (back in ours, or gone).
	if now, err := os.Readlink(nsPath); err == nil && now == inside {
		t.Errorf("%s is still in the LAN's namespace after hold returned", nsPath)
	}
}
