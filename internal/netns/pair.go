package netns

import (
	"net/netip"
	"testing"
)

// NewPairT returns a namespace for the test holding a veth pair, a and
// b, both up, with addr on a: two interfaces that use ARP, with no other
// host behind them. The namespace is closed when the test ends; without
// the privilege to make it, the test is skipped or failed as NewT does.
func NewPairT(t testing.TB, a, b string, addr netip.Prefix) *NS {
	t.Helper()
	ns := NewT(t)
	if err := Veth(ns, a, ns, b); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{a, b} {
		if err := ns.SetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.AddAddr(a, addr); err != nil {
		t.Fatal(err)
	}
	return ns
}
