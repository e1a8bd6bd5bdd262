package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// Runs that exit 3 on a real host still print one JSON object with
// --format json, which names the cause: an interface that does not
// exist, a missing capability before anything was checked, and a
// missing capability for the repair after the check (peers reported).
func TestE2EJSONOnFailure(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	tests := []struct {
		name       string
		inv        invocation
		cause      string
		capability string
		message    string // substring
		peers      int
	}{
		{name: "unknown interface", inv: args("verify", "--format", "json", "-i", "nosuch0", okIP.String()),
			cause: causeInterface, message: "nosuch0"},
		{name: "no capability", inv: invocation{args: []string{"verify", "--format", "json", okIP.String()}, nobody: true},
			cause: causePrivilege, capability: "CAP_NET_RAW", message: "operation not permitted; probing needs CAP_NET_RAW; run as root"},
		{name: "repair with CAP_NET_RAW only",
			inv: invocation{args: []string{"repair", "--format", "json", "--include-permanent", okIP.String(), staleIP.String()},
				nobody: true, ambient: []uintptr{capNetRaw}},
			cause: causePrivilege, capability: "CAP_NET_ADMIN", message: "repair needs CAP_NET_ADMIN", peers: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := arpcheck(t, l.Prober, tt.inv)
			if o.status != exitUnknown {
				t.Errorf("status %d; want 3\n%s", o.status, o)
			}
			r := parseFailure(t, o.stdout)
			if r.ExitCode != 3 || r.Version != 1 || len(r.Peers) != tt.peers || r.Error == nil {
				t.Fatalf("exit_code %d, version %d, %d peers, error %+v; want 3, 1, %d, an error\n%s",
					r.ExitCode, r.Version, len(r.Peers), r.Error, tt.peers, o)
			}
			if e := r.Error; e.Cause != tt.cause || e.Capability != tt.capability || !strings.Contains(e.Message, tt.message) {
				t.Errorf("error %+v; want cause %s, capability %q, a message containing %q", *e, tt.cause, tt.capability, tt.message)
			}
		})
	}
}

// repair reports what verify reports about peers it does not probe: an
// offlink peer keeps its reason, and has no interface (null); the
// summary counts the deleted entries; text and nagios say so too.
func TestE2ERepairReport(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	peers := []string{okIP.String(), deadIP.String(), behindGWIP.String(), noRouteIP.String()}
	verify := parseJSON(t, arpcheck(t, l.Prober, args(append([]string{"verify", "--format", "json"}, peers...)...)))
	o := arpcheck(t, l.Prober, args(append([]string{"repair", "--format", "json", "--include-permanent", "--delete-dead"}, peers...)...))
	if o.status != exitOK {
		t.Errorf("status %d; want 0 (the dead entry deleted)\n%s", o.status, o)
	}
	repair := parseJSON(t, o)
	var raw struct {
		Peers   []map[string]any `json:"peers"`
		Summary map[string]any   `json:"summary"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{behindGWIP, noRouteIP} {
		v, r := verify.Peers[verify.peer(t, ip)], repair.Peers[repair.peer(t, ip)]
		if r.Verdict != "offlink" || r.Reason == "" || r.Reason != v.Reason {
			t.Errorf("%s: repair says %s %q; want offlink and verify's reason %q", ip, r.Verdict, r.Reason, v.Reason)
		}
		iface, ok := raw.Peers[repair.peer(t, ip)]["interface"]
		if !ok || iface != nil {
			t.Errorf(`%s: "interface": %#v (present %v); want null`, ip, iface, ok)
		}
	}
	if d, ok := raw.Summary["deleted"]; !ok || d != 1.0 {
		t.Errorf("summary %v; want deleted 1", raw.Summary)
	}

	// The same in text (the dead entry is gone now: the repair finds
	// nothing to delete).
	o = arpcheck(t, l.Prober, args(append([]string{"repair"}, peers...)...))
	for _, ip := range []netip.Addr{behindGWIP, noRouteIP} {
		reason := verify.Peers[verify.peer(t, ip)].Reason
		if !strings.Contains(o.stdout, reason) {
			t.Errorf("repair's text does not give %s's reason %q:\n%s", ip, reason, o.stdout)
		}
	}
}
