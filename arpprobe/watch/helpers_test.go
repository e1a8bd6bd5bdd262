package watch

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/internal/fake"
	"github.com/arpcheck/arpcheck/internal/flood"
	"github.com/arpcheck/arpcheck/internal/netns"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
)

// deadMAC is the MAC of an instance that is gone.
const deadMACText = "02:00:00:00:99:99"

var deadMAC, _ = net.ParseMAC(deadMACText)

// errEPERM is what a socket call returns without the privilege.
var errEPERM = &os.SyscallError{Syscall: "sendmsg", Err: os.ErrPermission}

// entry returns an entry for 198.18.0.2 on interface 2.
func entry(mac net.HardwareAddr, s arpprobe.State) *arpprobe.Neighbor {
	return &arpprobe.Neighbor{IP: netip.MustParseAddr("198.18.0.2"), Ifindex: 2, MAC: mac, State: s}
}

// fakeOpts are probe options for a fake LAN, whose hosts answer at once.
func fakeOpts(policy arpprobe.BroadcastPolicy) arpprobe.ProbeOptions {
	return arpprobe.ProbeOptions{Timeout: 40 * time.Millisecond, Attempts: 2, Broadcast: policy, Settle: 5 * time.Millisecond}
}

// fast are probe options for a namespace LAN: short, with room for a
// loaded machine.
func fast(policy arpprobe.BroadcastPolicy) arpprobe.ProbeOptions {
	return arpprobe.ProbeOptions{Timeout: 150 * time.Millisecond, Attempts: 2, Broadcast: policy}
}

// arpFrame builds an ARP frame from sha: a request goes to broadcast, a
// reply to its target.
func arpFrame(op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	dst := tha
	if op == arp.OperationRequest {
		dst = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	return fake.Frame(uint16(op), sha, sha, spa, dst, tha, tpa)
}

func peerByIP(t *testing.T, rep *arpprobe.Report, ip string) arpprobe.Peer {
	t.Helper()
	for _, p := range rep.Peers {
		if p.IP.String() == ip {
			return p
		}
	}
	t.Fatalf("no peer %s in the report", ip)
	return arpprobe.Peer{}
}

// startFlood floods from host h, rate frames a second, until the test
// ends or Stop is called.
func startFlood(t *testing.T, h *netns.Host, frames [][]byte, rate int) *flood.Flooder {
	t.Helper()
	f, err := flood.Start(h.NS.Do, netns.HostIface, frames, rate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop() })
	return f
}

// newTestLoop returns the loop of a Watcher on table and topology, over
// a fake LAN, for tests that drive its steps themselves instead of Run.
func newTestLoop(t *testing.T, table arpprobe.NeighborTable, topology arpprobe.Topology) *loop {
	t.Helper()
	w, err := New(Config{Table: table, Topology: topology, Prober: (&fake.LAN{}).Config()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.prober.Close()
		w.pin.Close()
	})
	return &loop{w: w, sched: newScheduler(Gap, coalesceWait, maxPerCause)}
}
