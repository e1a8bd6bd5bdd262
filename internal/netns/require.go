package netns

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Require skips the test when namespaces cannot be made here (not root,
// or creating one fails for lack of privilege), or fails it when the
// environment variable CI is "true": in CI a skipped namespace test would
// hide a failure. It creates and closes one namespace to find out.
func Require(t testing.TB) {
	t.Helper()
	closeT(t, newT(t))
}

// NewT returns a new namespace for the test, closed when the test ends,
// whether it passes or fails. Without the privilege to make one it skips
// or fails the test as Require does.
func NewT(t testing.TB) *NS {
	t.Helper()
	ns := newT(t)
	t.Cleanup(func() { closeT(t, ns) })
	return ns
}

// NewLANT returns a LAN (see NewLAN) with a host for each of hosts,
// closed when the test ends, whether it passes or fails. Without the
// privilege to make namespaces it skips or fails the test as Require does.
func NewLANT(t testing.TB, prefix netip.Prefix, hosts ...netip.Addr) *LAN {
	t.Helper()
	requireRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := NewLAN(ctx, prefix)
	checkT(t, err)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close LAN: %v", err)
		}
	})
	for _, a := range hosts {
		if _, err := l.AddHost(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func newT(t testing.TB) *NS {
	t.Helper()
	requireRoot(t)
	ns, err := New()
	checkT(t, err)
	return ns
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "needs root to create network namespaces")
	}
}

// checkT ends the test on err: a skip (or a CI failure) when err is a
// permission error, a failure otherwise.
func checkT(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, os.ErrPermission) {
		unavailable(t, "cannot create a network namespace: "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
}

func closeT(t testing.TB, ns *NS) {
	t.Helper()
	if err := ns.Close(); err != nil {
		t.Errorf("close %s: %v", ns, err)
	}
}

func unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason + " (CI is true: a skipped namespace test is a failure)")
	}
	t.Skip(reason)
}

// OpenFDs returns how many of this process's file descriptors refer to a
// network namespace: a test compares the count before and after, to find
// a namespace it left open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "net:[") {
			n++
		}
	}
	return n
}
