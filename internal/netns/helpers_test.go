package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// eventually calls check until it returns nil, failing the test with the
// last error once timeout has passed. Kernel state that follows a change
// asynchronously (namespace destruction, carrier, ARP) needs it.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linkGone returns nil once ns has no link called name.
func linkGone(ns *NS, name string) error {
	_, err := ns.Handle().LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("link %s still exists in %s", name, ns)
}

const udpPort = 40000

// sendUDP sends one datagram from a socket in from to dst. Before it
// leaves, from's kernel resolves dst (or the gateway) by ARP.
func sendUDP(t *testing.T, from *NS, dst netip.Addr) {
	t.Helper()
	var out *net.UDPConn
	err := from.Do(func() (err error) {
		out, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, udpPort)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("arpcheck")); err != nil {
		t.Fatal(err)
	}
}

// udpExchange sends one datagram from a socket in from to dst, where a
// socket in to listens, and returns the sender's address as to saw it: real
// traffic through whatever joins the namespaces.
func udpExchange(t *testing.T, from, to *NS, dst netip.Addr) netip.Addr {
	t.Helper()
	var in *net.UDPConn
	err := to.Do(func() (err error) {
		in, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, udpPort)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	sendUDP(t, from, dst)
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, src, err := in.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("datagram to %s did not arrive: %v", dst, err)
	}
	if got := string(buf[:n]); got != "arpcheck" {
		t.Fatalf("received %q; want %q", got, "arpcheck")
	}
	return src.Addr().Unmap()
}

// fakeTB stands in for a test so that a test can watch what a helper
// does when the test it serves fails or skips: Fatal and Skip end the
// goroutine as the real ones do, and cleanups run when run returns.
type fakeTB struct {
	testing.TB
	cleanups []func()
	failed   bool
	skipped  bool
	msg      string
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Cleanup(fn func())         { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(s string, a ...any) { f.failed = true; f.msg = fmt.Sprintf(s, a...) }
func (f *fakeTB) Fatal(a ...any)            { f.failed = true; f.msg = fmt.Sprint(a...); runtime.Goexit() }
func (f *fakeTB) Fatalf(s string, a ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(s, a...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(a ...any) { f.skipped = true; f.msg = fmt.Sprint(a...); runtime.Goexit() }

// run calls body on its own goroutine, as the testing package runs a
// test, then the registered cleanups, last first.
func (f *fakeTB) run(body func(tb testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}
