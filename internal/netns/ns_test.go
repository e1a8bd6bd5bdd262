package netns

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"
)

// hostNS returns the namespace of the calling thread, which for a
// goroutine that never locked its thread is the process's own.
func hostNS(t *testing.T) vnetns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := vnetns.Get()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestNSCloseDestroysNamespace(t *testing.T) {
	witness := NewT(t)
	before := OpenFDs(t)

	ns, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got := OpenFDs(t); got != before+1 {
		t.Errorf("after New: %d namespace fds; want %d", got, before+1)
	}
	// The witness holds one end of a veth; the kernel removes it when,
	// and only when, the namespace holding the other end is destroyed.
	if err := Veth(ns, "in0", witness, "out0"); err != nil {
		t.Fatal(err)
	}
	if err := linkGone(witness, "out0"); err == nil {
		t.Fatal("veth end out0 missing in the witness namespace right after Veth")
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v; want nil", err)
	}
	if got := OpenFDs(t); got != before {
		t.Errorf("after Close: %d namespace fds; want %d", got, before)
	}
	eventually(t, 10*time.Second, func() error { return linkGone(witness, "out0") })
	// Keep ns reachable: a socket it failed to close must not be closed
	// by a finalizer instead.
	runtime.KeepAlive(ns)
}

func TestNSDo(t *testing.T) {
	host := hostNS(t)
	ns := NewT(t)
	errFn := errors.New("from fn")
	for i := range 20 { // new goroutines, and maybe reused threads, every time
		var inside, equalHost bool
		err := ns.Do(func() error {
			cur, err := vnetns.Get()
			if err != nil {
				return err
			}
			defer cur.Close()
			inside, equalHost = cur.Equal(ns.fd), cur.Equal(host)
			return errFn
		})
		if !errors.Is(err, errFn) {
			t.Fatalf("Do #%d returned %v; want fn's error", i, err)
		}
		if !inside || equalHost {
			t.Fatalf("Do #%d: fn ran in the namespace: %v, in the host's: %v; want true, false", i, inside, equalHost)
		}
		if cur := hostNS(t); !cur.Equal(host) {
			t.Fatalf("after Do #%d the test's thread is in %s; want the host's %s", i, cur.UniqueId(), host.UniqueId())
		}
	}
}

func TestNSNewSetup(t *testing.T) {
	ns := NewT(t)
	lo, err := ns.Handle().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo flags %v; want up", lo.Attrs().Flags)
	}
	links, err := ns.Handle().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Errorf("a new namespace has %d links; want only lo", len(links))
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("kernel without IPv6")
	}
	for _, p := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if got, err := ns.ReadSysctl(p); err != nil || got != "1" {
			t.Errorf("%s = %q, %v; want \"1\"", p, got, err)
		}
	}
}

// readHostSysctl reads a sysctl from the test's goroutine, that is, of
// the host's namespace. Tests never write host sysctls.
func readHostSysctl(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestNSSysctlStaysInNamespace(t *testing.T) {
	const path = "net/ipv4/conf/all/arp_ignore"
	hostBefore := readHostSysctl(t, path)
	want := "1"
	if hostBefore == want {
		want = "2"
	}
	ns := NewT(t)
	if got, err := ns.ReadSysctl(path); err != nil || got != "0" {
		t.Fatalf("fresh namespace: %s = %q, %v; want the kernel default \"0\"", path, got, err)
	}
	if err := ns.Sysctl(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ns.ReadSysctl(path); err != nil || got != want {
		t.Errorf("in namespace: %s = %q, %v; want %q", path, got, err, want)
	}
	if got := readHostSysctl(t, path); got != hostBefore {
		t.Errorf("host's %s changed from %q to %q", path, hostBefore, got)
	}
	other := NewT(t)
	if got, err := other.ReadSysctl(path); err != nil || got != "0" {
		t.Errorf("another namespace: %s = %q, %v; want \"0\"", path, got, err)
	}
}

func TestNSSysctlRejects(t *testing.T) {
	ns := NewT(t)
	tests := []struct {
		name, path string
		notExist   bool
	}{
		{"outside net", "kernel/hostname", false},
		{"escapes net", "net/../kernel/hostname", false},
		{"absolute", "/proc/sys/net/ipv4/ip_forward", false},
		{"unclean", "net//ipv4/ip_forward", false},
		{"missing", "net/ipv4/conf/nosuch0/arp_ignore", true},
		{"host only", "net/ipv4/neigh/default/gc_thresh3", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ns.Sysctl(tt.path, "1")
			if err == nil {
				t.Fatalf("Sysctl(%q) = nil; want an error", tt.path)
			}
			if got := errors.Is(err, os.ErrNotExist); got != tt.notExist {
				t.Errorf("Sysctl(%q) = %v; ErrNotExist %v, want %v", tt.path, err, got, tt.notExist)
			}
		})
	}
}
