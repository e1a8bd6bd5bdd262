package main

import (
	"maps"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// repair changes exactly what it reports. PERMANENT entries, which the
// kernel never changes by itself, make every change in the table the
// repair's own.
func TestE2ERepairChangesWhatItReports(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	before := l.table()
	o := arpcheck(t, l.Prober, args("repair", "--include-permanent", "--delete-dead", "--broadcast", "always",
		"--format", "json", okIP.String(), staleIP.String(), deadIP.String(), conflictIP.String(), uncachedIP.String()))
	if o.status != exitCritical {
		t.Errorf("status %d; want 2 (the conflict is left)\n%s", o.status, o)
	}
	r := parseJSON(t, o)
	wantActions := map[netip.Addr]string{okIP: "none", staleIP: "replaced", deadIP: "deleted", conflictIP: "refused", uncachedIP: "none"}
	for ip, want := range wantActions {
		p := r.Peers[r.peer(t, ip)]
		if p.Action != want {
			t.Errorf("%s: action %s (%q); want %s", ip, p.Action, p.Reason, want)
		}
	}
	if p := r.Peers[r.peer(t, conflictIP)]; !strings.Contains(p.Reason, "conflict") {
		t.Errorf("%s: reason %q; want it to say conflict", conflictIP, p.Reason)
	}
	if r.Summary["repaired"] != 1 || r.Summary["stale"] != 1 {
		t.Errorf("summary %v; want 1 stale, 1 repaired", r.Summary)
	}

	want := maps.Clone(before)
	want[staleIP] = entry{MAC: netns.HostMAC(2).String(), State: "PERMANENT"}
	delete(want, deadIP)
	after := l.table()
	if !maps.Equal(after, want) {
		t.Errorf("table after repair:\n%v\nwant\n%v", after, want)
	}
	// What the report says the table holds at the end is what it holds.
	for _, p := range r.Peers {
		ip := netip.MustParseAddr(p.IP)
		e, ok := after[ip]
		switch {
		case p.After == nil && ok:
			t.Errorf("%s: report says no entry after, table has %v", ip, e)
		case p.After != nil && (!ok || e.MAC != p.After.MAC || e.State != p.After.State):
			t.Errorf("%s: report says %+v after, table has %v", ip, *p.After, e)
		}
	}

	// A second repair finds nothing to do but the conflict.
	o = arpcheck(t, l.Prober, args("repair", "--include-permanent", "--delete-dead", "--format", "json",
		okIP.String(), staleIP.String(), uncachedIP.String()))
	r = parseJSON(t, o)
	if o.status != exitOK || r.Summary["ok"] != 2 || r.Summary["uncached"] != 1 {
		t.Errorf("second repair: want exit 0, 2 ok, 1 uncached\n%s", o)
	}
	if again := l.table(); !maps.Equal(again, after) {
		t.Errorf("second repair changed the table:\n%v\nwas\n%v", again, after)
	}
}

// An ordinary (STALE) wrong entry is replaced, or found healed by the
// kernel from the owner's reply to our broadcast; either way the table
// ends with the owner's MAC and the run exits 0.
func TestE2ERepairStale(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	o := arpcheck(t, l.Prober, args("repair", "--format", "json", okIP.String(), staleIP.String()))
	r := parseJSON(t, o)
	p := r.Peers[r.peer(t, staleIP)]
	if o.status != exitOK || p.Verdict != "stale" || (p.Action != "replaced" && p.Action != "healed") {
		t.Errorf("want exit 0 and the stale peer replaced or healed\n%s", o)
	}
	if e := l.table()[staleIP]; e.MAC != netns.HostMAC(2).String() || e.State == "PERMANENT" {
		t.Errorf("%s is %v after repair; want an ordinary entry for %s", staleIP, e, netns.HostMAC(2))
	}
	if p.After == nil || p.After.MAC != netns.HostMAC(2).String() {
		t.Errorf("report's after = %+v; want %s", p.After, netns.HostMAC(2))
	}
}

// Refusals and the dry run change nothing.
func TestE2ERepairChangesNothing(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	peers := []string{okIP.String(), staleIP.String(), deadIP.String(), conflictIP.String()}
	tests := []struct {
		name    string
		flags   []string
		actions map[netip.Addr]string
		stdout  string // substring of the text report
	}{
		{name: "dry run", flags: []string{"--dry-run", "--include-permanent", "--delete-dead", "--broadcast", "always"},
			actions: map[netip.Addr]string{staleIP: "would-replace", deadIP: "would-delete", conflictIP: "refused", okIP: "none"},
			stdout:  "(dry run: nothing changed)"},
		{name: "permanent entries are refused by default", flags: []string{"--delete-dead"},
			actions: map[netip.Addr]string{staleIP: "refused", deadIP: "refused", okIP: "none", conflictIP: "none"},
			stdout:  "use --include-permanent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := l.table()
			text := arpcheck(t, l.Prober, args(append(append([]string{"repair"}, tt.flags...), peers...)...))
			if text.status != exitCritical || !strings.Contains(text.stdout, tt.stdout) {
				t.Errorf("want exit 2 and %q in the report\n%s", tt.stdout, text)
			}
			o := arpcheck(t, l.Prober, args(append(append([]string{"repair", "--format", "json"}, tt.flags...), peers...)...))
			r := parseJSON(t, o)
			for ip, want := range tt.actions {
				if p := r.Peers[r.peer(t, ip)]; p.Action != want {
					t.Errorf("%s: action %s (%q); want %s", ip, p.Action, p.Reason, want)
				}
			}
			if after := l.table(); !maps.Equal(after, before) {
				t.Errorf("table changed:\n%v\nwas\n%v", after, before)
			}
		})
	}
}

// An extern_learn entry (a control plane owns it) is refused without
// --include-extern-learn, and left as it is; with it, it is corrected and
// keeps the flag.
func TestE2ERepairExternLearn(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	// The kernel heals an entry, extern_learn or not, from the owner's
	// reply to our broadcast once its locktime has passed; raised, every
	// change of the entry is arpcheck's.
	if err := l.Prober.Sysctl("net/ipv4/neigh/"+netns.LANIface+"/locktime", "100000"); err != nil {
		t.Fatal(err)
	}
	if err := l.Prober.AddNeigh(netns.LANIface, staleIP, wrongMAC, netlink.NUD_STALE, netlink.NTF_EXT_LEARNED); err != nil {
		t.Fatal(err)
	}
	o := arpcheck(t, l.Prober, args("repair", "--format", "json", "--include-permanent", staleIP.String()))
	r := parseJSON(t, o)
	p := r.Peers[r.peer(t, staleIP)]
	if o.status != exitCritical || p.Verdict != "stale" || p.Action != "refused" || !strings.Contains(p.Reason, "--include-extern-learn") {
		t.Errorf("without --include-extern-learn: want exit 2, stale refused naming the flag\n%s", o)
	}
	if e := l.table()[staleIP]; e.MAC != wrongMAC.String() {
		t.Errorf("%s is %v after a refused repair; want it untouched (%s)", staleIP, e, wrongMAC)
	}

	o = arpcheck(t, l.Prober, args("repair", "--format", "json", "--include-extern-learn", staleIP.String()))
	r = parseJSON(t, o)
	p = r.Peers[r.peer(t, staleIP)]
	if o.status != exitOK || p.Verdict != "stale" || (p.Action != "replaced" && p.Action != "healed") {
		t.Errorf("with --include-extern-learn: want exit 0, stale replaced\n%s", o)
	}
	n, err := l.Prober.Neigh(netns.LANIface, staleIP)
	if err != nil {
		t.Fatal(err)
	}
	if n.HardwareAddr.String() != netns.HostMAC(2).String() || n.Flags&netlink.NTF_EXT_LEARNED == 0 {
		t.Errorf("%s after repair: %s flags %#x; want %s with NTF_EXT_LEARNED kept", staleIP, n.HardwareAddr, n.Flags, netns.HostMAC(2))
	}
}
