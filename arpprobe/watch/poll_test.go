package watch

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/internal/fake"
)

// scanTable is a fake table that can be scanned.
type scanTable struct{ *fake.Table }

func (t scanTable) ScanNeighbors(ctx context.Context, fn func(*arpprobe.Neighbor)) error {
	t.Scan(fn)
	return nil
}

// A poll through a NeighborScanner hands on exactly what changed since
// the last read, as events would: an entry that entered DELAY, one that
// changed MAC, one that appeared; it forgets one that went; and when
// nothing changed it allocates nothing.
func TestWatchPollScansChanges(t *testing.T) {
	const a, b, c = "198.18.0.2", "198.18.0.3", "198.18.0.4"
	tbl := scanTable{fake.OneLAN(watchNeigh(a, macA, arpprobe.StateStale), watchNeigh(b, macA, arpprobe.StateReachable))}
	l := newTestLoop(t, tbl, tbl)
	w := l.w
	ctx := context.Background()
	if err := l.refreshLinks(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	triggers := func() string {
		var s []string
		for _, tr := range l.sched.take(time.Now().Add(time.Hour)) {
			s = append(s, fmt.Sprintf("%s %s %s", tr.IP, tr.Cause, tr.MAC))
		}
		slices.Sort(s)
		return fmt.Sprint(s)
	}
	cached := func() string {
		var s []string
		for k, n := range w.cache {
			s = append(s, fmt.Sprintf("%s %s %s", k.ip, n.MAC, n.State))
		}
		slices.Sort(s)
		return fmt.Sprint(s)
	}
	if allocs := testing.AllocsPerRun(20, func() { l.poll(ctx) }); allocs != 0 {
		t.Errorf("a poll of an unchanged table allocates %v times; want 0", allocs)
	}
	if got := triggers(); got != "[]" {
		t.Errorf("polls of an unchanged table asked for %s; want nothing", got)
	}

	set := func(ip string, mac []byte, s arpprobe.State) {
		n := watchNeigh(ip, mac, s)
		n.Ifindex, n.Interface = 2, "fake2"
		tbl.Set(n)
	}
	set(a, macA, arpprobe.StateDelay)
	set(b, macB, arpprobe.StateReachable)
	set(c, macA, arpprobe.StateReachable)
	l.poll(ctx)
	want := fmt.Sprint([]string{a + " state " + macA.String(), b + " mac " + macB.String(), c + " new " + macA.String()})
	if got := triggers(); got != want {
		t.Errorf("after the changes, the poll asked for %s; want %s", got, want)
	}
	tbl.Delete(netip.MustParseAddr(b))
	l.poll(ctx)
	want = fmt.Sprint([]string{a + " " + macA.String() + " DELAY", c + " " + macA.String() + " REACHABLE"})
	if got := cached(); got != want {
		t.Errorf("cache after %s went: %s; want %s", b, got, want)
	}
	if got := triggers(); got != "[]" {
		t.Errorf("an entry that went asked for %s; want nothing", got)
	}
}
