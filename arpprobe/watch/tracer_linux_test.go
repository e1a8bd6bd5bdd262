package watch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/internal/netns"
)

// A NeighborTracer opened in one namespace reports its entries as they
// enter DELAY, with the entry's interface, address and MAC, and nothing
// of another namespace whose interface has the same name and whose entry
// has the same address: the tracepoints are the whole kernel's, and the
// program must tell the namespaces apart.
func TestNeighborTracer(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.2")
	prefix := netip.MustParsePrefix("198.18.0.1/24")
	mine, other := netns.NewLANT(t, prefix, ip), netns.NewLANT(t, prefix, ip)
	// The same address, each with its own MAC, on interfaces of the same
	// name (and likely the same index).
	otherMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x98}
	for l, mac := range map[*netns.LAN]net.HardwareAddr{mine: deadMAC, other: otherMAC} {
		// Nobody answers: the entry stays in DELAY once used.
		if err := l.Switch.SetDown(l.Hosts[0].Port); err != nil {
			t.Fatal(err)
		}
		if err := l.Prober.AddNeigh(netns.LANIface, ip, mac, int(arpprobe.StateStale), 0); err != nil {
			t.Fatal(err)
		}
	}
	ifindex, err := mine.Prober.LinkIndex(netns.LANIface)
	if err != nil {
		t.Fatal(err)
	}
	var tr *NeighborTracer
	if err := mine.Prober.Do(func() (err error) { tr, err = OpenNeighborTracer(); return err }); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := tr.SubscribeNeighbors(ctx) // from this goroutine, outside the namespace
	if err != nil {
		t.Fatal(err)
	}
	// The other namespace's entry first: had the tracer reported it, it
	// would come before this namespace's.
	watchSendUDP(t, other.Prober, ip)
	if _, state := watchEntry(t, other, ip); state != arpprobe.StateDelay {
		t.Fatalf("other namespace's entry: %s after use; want DELAY", state)
	}
	watchSendUDP(t, mine.Prober, ip)
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		want := fmt.Sprintf("%s %d %s %s err=<nil>", ip, ifindex, deadMACText, arpprobe.StateDelay)
		if got := fmt.Sprintf("%s %d %s %s err=%v", ev.Neighbor.IP, ev.Neighbor.Ifindex, ev.Neighbor.MAC, ev.Neighbor.State, ev.Err); got != want {
			t.Errorf("event %s; want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s of the entry's first use")
	}
	cancel()
	for ev := range ch { // closed once the program is detached
		if ev.Err != nil {
			t.Errorf("event after cancel: %+v", ev)
		}
	}
}
