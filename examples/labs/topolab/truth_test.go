package main

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// TestJudge compares made-up reports and tables with a truth, without
// privileges: each case is one way arpcheck can be right or wrong.
func TestJudge(t *testing.T) {
	owner := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	lan0, lan1 := "lan0", "lan1"
	ok := entry{MAC: owner.String(), State: "STALE"}
	bad := entry{MAC: gone.String(), State: "STALE"}
	fixed := entry{MAC: owner.String(), State: "REACHABLE"}
	k0 := key{Iface: "lan0", IP: w("lan0", "198.18.6.14").IP}
	k1 := key{Iface: "lan1", IP: k0.IP}
	other := key{Iface: "lan0", IP: w("lan0", "198.18.6.99").IP}
	verify := command{args: []string{"verify"}, wants: []want{w("lan0", "198.18.6.14", "ok"), w("lan1", "198.18.6.14", "stale")}}
	repair := command{args: []string{"repair"}, wants: []want{w("lan0", "198.18.6.14", "ok"), w("lan1", "198.18.6.14", "stale").then(replaced, owner)}}
	both := []peer{{IP: "198.18.6.14", Interface: &lan0, Verdict: "ok"}, {IP: "198.18.6.14", Interface: &lan1, Verdict: "stale"}}
	seeded := table{k0: ok, k1: bad}

	tests := []struct {
		name          string
		cmd           command
		rep           report
		before, after table
		exit          *int // arpcheck's exit status; nil: the one the truth calls for
		right         bool
		got, wrote    []string // each must appear in the outcome
	}{
		{name: "verify right", cmd: verify, rep: report{Peers: both}, before: seeded, after: seeded, right: true,
			got: []string{"lan0 198.18.6.14: ok", "lan1 198.18.6.14: stale"}},
		{name: "an exit status the truth does not call for", cmd: verify, rep: report{Peers: both}, before: seeded, after: seeded,
			exit: new(int), got: []string{"exit 0 (truth: 2)"}},
		{name: "a peer object missing", cmd: verify, rep: report{Peers: both[:1]}, before: seeded, after: seeded,
			got: []string{"lan1 198.18.6.14: missing"}},
		{name: "a wrong verdict", cmd: verify,
			rep:    report{Peers: []peer{both[0], {IP: "198.18.6.14", Interface: &lan1, Verdict: "dead"}}},
			before: seeded, after: seeded, got: []string{"lan1 198.18.6.14: dead"}},
		{name: "one of the verdicts the truth allows",
			cmd:   command{wants: []want{w("lan0", "198.18.6.14", "ok", "offlink")}},
			rep:   report{Peers: []peer{{IP: "198.18.6.14", Interface: &lan0, Verdict: "offlink"}}},
			right: true, got: []string{"lan0 198.18.6.14: offlink"}},
		{name: "verify writes an entry", cmd: verify, rep: report{Peers: both}, before: seeded,
			after: table{k0: ok, k1: fixed}, wrote: []string{"changed lan1 198.18.6.14"}},
		{name: "an entry no want names is deleted", cmd: verify, rep: report{Peers: both},
			before: table{k0: ok, k1: bad, other: ok}, after: seeded, wrote: []string{"deleted lan0 198.18.6.99"}},
		{name: "an entry is added", cmd: verify, rep: report{Peers: both}, before: seeded,
			after: table{k0: ok, k1: bad, other: ok}, wrote: []string{"added lan0 198.18.6.99"}},
		{name: "kernel state changes are not writes", cmd: verify, rep: report{Peers: both}, before: seeded,
			after: table{k0: entry{MAC: ok.MAC, State: "REACHABLE"}, k1: bad}, right: true},
		{name: "repair right",
			cmd: repair, rep: report{Peers: []peer{both[0], {IP: "198.18.6.14", Interface: &lan1, Verdict: "stale", Action: "replaced"}}},
			before: seeded, after: table{k0: ok, k1: fixed}, right: true, got: []string{"lan1 198.18.6.14: stale replaced"}},
		{name: "repair left the entry wrong", cmd: repair, rep: report{Peers: both}, before: seeded, after: seeded,
			got: []string{"lan1 198.18.6.14 after: " + bad.String()}},
		{name: "repair dropped the extern_learn flag",
			cmd: command{wants: []want{w("lan1", "198.18.6.14", "stale").then(replaced, owner)}},
			rep: report{Peers: both[1:]}, before: table{k1: entry{MAC: bad.MAC, Extern: true}}, after: table{k1: fixed},
			got: []string{"lan1 198.18.6.14 after:"}},
		{name: "an entry to delete is still there",
			cmd: command{wants: []want{w("lan1", "198.18.6.14", "stale").then(deleted, nil)}},
			rep: report{Peers: both[1:]}, before: table{k1: bad}, after: table{k1: bad}, got: []string{"lan1 198.18.6.14 after:"}},
		{name: "a peer object nobody asked for", cmd: verify,
			rep:    report{Peers: append(slices.Clone(both), peer{IP: "198.18.6.99", Interface: &lan0, Verdict: "dead"})},
			before: seeded, after: seeded, got: []string{"lan0 198.18.6.99: dead (not expected)"}},
		{name: "an entry that must not be reported is not", cmd: command{wants: []want{w("dummy0", "198.18.25.2")}},
			before: table{{Iface: "dummy0", IP: w("", "198.18.25.2").IP}: ok}, after: table{{Iface: "dummy0", IP: w("", "198.18.25.2").IP}: ok},
			right: true},
		{name: "an entry that must not be reported is", cmd: command{wants: []want{w("dummy0", "198.18.25.2")}},
			rep: report{Peers: []peer{{IP: "198.18.25.2", Interface: func() *string { s := "dummy0"; return &s }(), Verdict: "dead"}}},
			got: []string{"dummy0 198.18.25.2: dead (should not be reported)"}},
		{name: "an offlink peer has no interface", cmd: command{wants: []want{w("", "198.18.17.9", "offlink")}},
			rep: report{Peers: []peer{{IP: "198.18.17.9", Verdict: "offlink"}}}, right: true, got: []string{"198.18.17.9: offlink"}},
		{name: "arpcheck failed", cmd: verify, rep: report{Peers: both, Error: &struct {
			Message string `json:"message"`
		}{Message: "lock held"}}, before: seeded, after: seeded, got: []string{"error: lock held"}},
		{name: "a bad address in the report", cmd: verify, rep: report{Peers: append(slices.Clone(both), peer{IP: "x"})},
			before: seeded, after: seeded, got: []string{`a peer with a bad address "x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exit := wantExit(tc.cmd)
			if tc.exit != nil {
				exit = *tc.exit
			}
			o := judge(tc.cmd, tc.rep, exit, tc.before, tc.after)
			if o.right != tc.right {
				t.Errorf("right = %v, want %v (got %q, wrote %q)", o.right, tc.right, o.got, o.wrote)
			}
			for _, g := range tc.got {
				if !slices.ContainsFunc(o.got, func(s string) bool { return strings.Contains(s, g) }) {
					t.Errorf("got %q, want a phrase with %q", o.got, g)
				}
			}
			for _, wr := range tc.wrote {
				if !slices.ContainsFunc(o.wrote, func(s string) bool { return strings.Contains(s, wr) }) {
					t.Errorf("wrote %q, want a phrase with %q", o.wrote, wr)
				}
			}
			if len(tc.wrote) == 0 && len(o.wrote) > 0 {
				t.Errorf("wrote %q, want nothing", o.wrote)
			}
		})
	}
}

// TestWriteTable checks the table's rows: counts over runs, a case that
// could not be built, and cells that hold a '|'.
func TestWriteTable(t *testing.T) {
	r := row{name: "multinic", built: "two NICs", command: "arpcheck verify 198.18.6.14", truth: "lan1: stale"}
	r.add(outcome{right: false, got: []string{"lan1 198.18.6.14: missing"}})
	r.add(outcome{right: true, got: []string{"lan1 198.18.6.14: stale"}, wrote: []string{"deleted lan0 a|b"}})
	rows := []row{r, {name: "vrf", built: "a VRF", failure: "could not be built: this kernel has no vrf driver"}}
	var b strings.Builder
	writeTable(&b, rows, 2)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"| case | what was built | command (also --format json) | truth | arpcheck's verdicts (2 runs) | right | written unasked |",
		"|---|---|---|---|---|---|---|",
		"| multinic | two NICs | `arpcheck verify 198.18.6.14` | lan1: stale | lan1 198.18.6.14: missing ×1; lan1 198.18.6.14: stale ×1 | 1 of 2 | deleted lan0 a\\|b ×1 |",
		"| vrf | a VRF | — | — | could not be built: this kernel has no vrf driver | — | — |",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestSelectCases: -cases picks cases in the lab's order, once each, and
// names an unknown one.
func TestSelectCases(t *testing.T) {
	tests := []struct {
		names []string
		want  []string
		err   string
	}{
		{names: nil, want: caseNames()},
		{names: []string{"ownaddr", " multinic", "ownaddr"}, want: []string{"multinic", "ownaddr"}},
		{names: []string{"multinic", "nosuch"}, err: `no case "nosuch"`},
	}
	for _, tc := range tests {
		got, err := selectCases(tc.names)
		var names []string
		for _, c := range got {
			names = append(names, c.name)
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("selectCases(%q) = %v, %v; want an error with %q", tc.names, names, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(names, tc.want) {
			t.Errorf("selectCases(%q) = %v, %v; want %v", tc.names, names, err, tc.want)
		}
	}
}

// TestWantExit: the exit status a truth calls for, by CLI.md's rule.
func TestWantExit(t *testing.T) {
	tests := []struct {
		name  string
		wants []want
		exit  int
	}{
		{"all ok, uncached or offlink", []want{w("a", "198.18.0.2", "ok", "offlink"), w("a", "198.18.0.3", "uncached"), w("", "198.18.1.9", "offlink")}, 0},
		{"a dead peer left", []want{w("a", "198.18.0.2", "ok"), w("a", "198.18.0.3", "dead")}, 1},
		{"a dead entry deleted", []want{w("a", "198.18.0.3", "dead").then(deleted, nil)}, 0},
		{"a stale entry left", []want{w("a", "198.18.0.3", "dead"), w("a", "198.18.0.4", "stale")}, 2},
		{"a stale entry replaced", []want{w("a", "198.18.0.4", "stale").then(replaced, gone)}, 0},
		{"a conflict", []want{w("a", "198.18.0.4", "conflict")}, 2},
		{"an entry not to report", []want{w("a", "198.18.0.4")}, 0},
	}
	for _, tc := range tests {
		if got := wantExit(command{wants: tc.wants}); got != tc.exit {
			t.Errorf("%s: wantExit = %d, want %d", tc.name, got, tc.exit)
		}
	}
}
