package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// Every verdict, from real kernels, in one run with --broadcast always.
func TestE2EVerdicts(t *testing.T) {
	l := newLab(t, netlink.NUD_STALE)
	before := l.table()
	o := arpcheck(t, l.Prober, args("verify", "--broadcast", "always", "--format", "json",
		okIP.String(), staleIP.String(), deadIP.String(), conflictIP.String(), uncachedIP.String(),
		behindGWIP.String(), noRouteIP.String()))
	if o.status != exitCritical {
		t.Errorf("status %d; want 2 (stale and conflict)\n%s", o.status, o)
	}
	r := parseJSON(t, o)
	if r.Version != 1 || r.Command != "verify" || r.DurationMS <= 0 || len(r.Peers) != 7 || r.ExitCode != o.status {
		t.Errorf("version %d, command %q, duration %v ms, %d peers, exit_code %d; want 1, verify, > 0, 7, %d",
			r.Version, r.Command, r.DurationMS, len(r.Peers), r.ExitCode, o.status)
	}
	host := func(n int) string { return netns.HostMAC(n).String() }
	tests := []struct {
		ip      netip.Addr
		verdict string
		cached  *jsonEntry // nil: none
		replies []string
		owner   string // "": null
	}{
		{okIP, "ok", &jsonEntry{host(1), "STALE"}, []string{host(1)}, host(1)},
		{staleIP, "stale", &jsonEntry{wrongMAC.String(), "STALE"}, []string{host(2)}, host(2)},
		{deadIP, "dead", &jsonEntry{deadMAC.String(), "STALE"}, nil, ""},
		{conflictIP, "conflict", &jsonEntry{host(3), "STALE"}, []string{host(3), host(4)}, ""},
		{uncachedIP, "uncached", nil, []string{host(5)}, host(5)},
		{behindGWIP, "offlink", nil, nil, ""},
		{noRouteIP, "offlink", nil, nil, ""},
	}
	for _, tt := range tests {
		i := r.peer(t, tt.ip)
		p := r.Peers[i]
		owner := ""
		if p.Owner != nil {
			owner = *p.Owner
		}
		if p.Verdict != tt.verdict || owner != tt.owner || !slices.Equal(macs(r, i), tt.replies) ||
			(p.Cached == nil) != (tt.cached == nil) || p.Cached != nil && *p.Cached != *tt.cached || p.Action != "none" {
			t.Errorf("%s: verdict %s, owner %q, replies %v, cached %+v, action %s;\nwant %s, %q, %v, %+v, none",
				tt.ip, p.Verdict, owner, macs(r, i), p.Cached, p.Action, tt.verdict, tt.owner, tt.replies, tt.cached)
		}
		if tt.verdict == "offlink" && (p.Interface != "" || p.Reason == "") {
			t.Errorf("%s: offlink with interface %q, reason %q; want none and a reason", tt.ip, p.Interface, p.Reason)
		}
		if tt.verdict != "offlink" && p.Interface != netns.LANIface {
			t.Errorf("%s: interface %q; want %s", tt.ip, p.Interface, netns.LANIface)
		}
	}
	if i := r.peer(t, behindGWIP); !strings.Contains(r.Peers[i].Reason, "gateway "+gatewayIP.String()) {
		t.Errorf("%s: reason %q; want it to name the gateway", behindGWIP, r.Peers[i].Reason)
	}
	want := map[string]int{"checked": 7, "ok": 1, "stale": 1, "dead": 1, "conflict": 1, "uncached": 1,
		"offlink": 2, "unknown": 0, "repaired": 0, "deleted": 0}
	if !mapsEqual(r.Summary, want) {
		t.Errorf("summary %v; want %v", r.Summary, want)
	}
	if r.Stats.SentUnicast == 0 || r.Stats.SentBroadcast == 0 {
		t.Errorf("stats %+v; want unicast and broadcast frames", r.Stats)
	}
	// verify writes nothing: every entry is still there, and those the
	// kernel cannot have learned anything about are as they were.
	after := l.table()
	for _, ip := range []netip.Addr{okIP, deadIP} {
		if after[ip].MAC != before[ip].MAC {
			t.Errorf("%s: %v before, %v after verify", ip, before[ip], after[ip])
		}
	}
	if _, ok := after[uncachedIP]; ok {
		t.Errorf("verify left an entry for %s: %v", uncachedIP, after[uncachedIP])
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The exit statuses of verify, each from a real run. PERMANENT entries
// keep every verdict the same from run to run.
func TestE2EExitStatus(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string // substring
	}{
		{name: "ok, uncached and offlink", args: []string{okIP.String(), uncachedIP.String(), noRouteIP.String(), behindGWIP.String()}},
		{name: "dead", args: []string{okIP.String(), deadIP.String()}, want: 1},
		{name: "stale", args: []string{staleIP.String(), deadIP.String()}, want: 2},
		{name: "conflict", args: []string{"--broadcast", "always", conflictIP.String()}, want: 2},
		{name: "auto does not look for conflicts behind a healthy entry", args: []string{conflictIP.String()}},
		{name: "never broadcasts: stale looks dead", args: []string{"--broadcast", "never", staleIP.String()}, want: 1},
		{name: "unknown interface", args: []string{"-i", "nope0", okIP.String()}, want: 3, stderr: `interface "nope0": unknown interface`},
		{name: "on the right interface", args: []string{"-i", netns.LANIface, okIP.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := arpcheck(t, l.Prober, args(append([]string{"verify"}, tt.args...)...))
			if o.status != tt.want || !strings.Contains(o.stderr, tt.stderr) {
				t.Errorf("status %d; want %d and stderr containing %q\n%s", o.status, tt.want, tt.stderr, o)
			}
		})
	}
}

// A deadline shorter than the probe makes the unfinished peers unknown,
// exit 3, with the report.
func TestE2EDeadline(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	o := arpcheck(t, l.Prober, args("verify", "--timeout", "30s", "--deadline", "1s", "--format", "json",
		okIP.String(), deadIP.String()))
	if o.status != exitUnknown || !strings.Contains(o.stderr, "1 of 2 peers could not be checked within the deadline") {
		t.Errorf("status %d; want 3 and a message about the deadline\n%s", o.status, o)
	}
	r := parseJSON(t, o)
	ok, dead := r.Peers[r.peer(t, okIP)], r.Peers[r.peer(t, deadIP)]
	if ok.Verdict != "ok" || dead.Verdict != "unknown" || !strings.Contains(dead.Reason, "deadline") || r.Summary["unknown"] != 1 {
		t.Errorf("verdicts %s, %s (%q), %d unknown; want ok, unknown for the deadline, 1", ok.Verdict, dead.Verdict, dead.Reason, r.Summary["unknown"])
	}
}

// The output formats of one state of the LAN.
func TestE2EFormats(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	peers := []string{okIP.String(), staleIP.String(), uncachedIP.String()}
	t.Run("text", func(t *testing.T) {
		o := arpcheck(t, l.Prober, args(append([]string{"verify", "--verbose"}, peers...)...))
		lines := strings.Split(strings.TrimSuffix(o.stdout, "\n"), "\n")
		if o.status != 2 || len(lines) != 5 {
			t.Fatalf("status %d, %d lines; want 2 and a header, 3 peers and a summary\n%s", o.status, len(lines), o)
		}
		wantFields := [][]string{
			{"IP", "INTERFACE", "CACHED", "REPLIES", "VERDICT", "ACTION", "REASON"},
			{okIP.String(), "lan0", netns.HostMAC(1).String(), "PERMANENT", netns.HostMAC(1).String(), "ok", "none"},
			{staleIP.String(), "lan0", wrongMAC.String(), "PERMANENT", netns.HostMAC(2).String(), "stale", "none"},
			{uncachedIP.String(), "lan0", "-", netns.HostMAC(5).String(), "uncached", "none"},
		}
		for i, want := range wantFields {
			if got := strings.Fields(lines[i]); !slices.Equal(got, want) {
				t.Errorf("line %d = %q; want fields %q", i+1, lines[i], want)
			}
		}
		if !strings.HasPrefix(lines[4], "3 peers checked in ") || !strings.HasSuffix(lines[4], ": 1 ok, 1 stale, 1 uncached") {
			t.Errorf("summary %q; want 3 peers checked ...: 1 ok, 1 stale, 1 uncached", lines[4])
		}
		// The columns line up: every verdict starts where VERDICT does.
		col := strings.Index(lines[0], "VERDICT")
		for _, line := range lines[1:4] {
			if v := strings.Fields(line[col:])[0]; !slices.Contains([]string{"ok", "stale", "uncached"}, v) {
				t.Errorf("line %q: %q under VERDICT", line, v)
			}
		}
		if !strings.Contains(o.stderr, "frames: sent ") {
			t.Errorf("--verbose: stderr %q; want frame counts", o.stderr)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		o := arpcheck(t, l.Prober, args("verify", "-q", okIP.String(), uncachedIP.String(), noRouteIP.String()))
		if o.status != 0 || o.stdout != "" || o.stderr != "" {
			t.Errorf("all well with -q: want exit 0 and no output\n%s", o)
		}
		o = arpcheck(t, l.Prober, args("verify", "-q", okIP.String(), staleIP.String()))
		if o.status != 2 || strings.Contains(o.stdout, okIP.String()+" ") || !strings.Contains(o.stdout, staleIP.String()+" ") {
			t.Errorf("-q with a stale peer: want exit 2 and only the stale peer listed\n%s", o)
		}
	})
	t.Run("prometheus to a file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "arpcheck.prom")
		o := arpcheck(t, l.Prober, args(append([]string{"verify", "--format", "prometheus", "--output", path}, peers...)...))
		if o.status != 2 || o.stdout != "" {
			t.Errorf("want exit 2 and nothing on stdout\n%s", o)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v; want 0644", path, fi.Mode())
		}
		if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
			t.Errorf("directory holds %v; want only the report", names)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("parse: %v\n%s", err, b)
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"arpcheck_exit_code", map[string]string{"command": "verify"}, 2},
			{"arpcheck_peers", map[string]string{"verdict": "stale"}, 1},
			{"arpcheck_peers", map[string]string{"verdict": "ok"}, 1},
			{"arpcheck_peers_checked", nil, 3},
			{"arpcheck_peer_verdict", map[string]string{"ip": staleIP.String(), "interface": "lan0", "verdict": "stale"}, 1},
			{"arpcheck_peer_verdict", map[string]string{"ip": uncachedIP.String(), "verdict": "uncached"}, 1},
		} {
			if v, ok := metricValue(mfs, c.name, c.labels); !ok || v != c.want {
				t.Errorf("%s%v = %v (found %v); want %v", c.name, c.labels, v, ok, c.want)
			}
		}
		if v, ok := metricValue(mfs, "arpcheck_frames_sent", map[string]string{"kind": "unicast"}); !ok || v < 2 {
			t.Errorf("arpcheck_frames_sent{kind=unicast} = %v; want at least 2", v)
		}
	})
	t.Run("nagios", func(t *testing.T) {
		o := arpcheck(t, l.Prober, args(append([]string{"verify", "--format", "nagios"}, peers...)...))
		want := "ARPCHECK CRITICAL - 1 stale; 3 peers checked | checked=3;;;0 ok=1;;;0 stale=1;0;0;0 dead=0;0;;0 conflict=0;0;0;0 " +
			"uncached=1;;;0 offlink=0;;;0 unknown=0;;;0 repaired=0;;;0 deleted=0;;;0 duration="
		wantPeer := "stale " + staleIP.String() + " on lan0: cached " + wrongMAC.String() + " PERMANENT, answered by " + netns.HostMAC(2).String() + "\n"
		if lines := strings.SplitAfter(o.stdout, "\n"); o.status != 2 || !strings.HasPrefix(o.stdout, want) || len(lines) != 3 || lines[1] != wantPeer {
			t.Errorf("want exit 2, a first line starting %q and the long output %q\n%s", want, wantPeer, o)
		}
		o = arpcheck(t, l.Prober, args("verify", "--format", "nagios", okIP.String(), deadIP.String()))
		if o.status != 1 || !strings.HasPrefix(o.stdout, "ARPCHECK WARNING - 1 dead; 2 peers checked | ") ||
			!strings.HasSuffix(o.stdout, "\ndead "+deadIP.String()+" on lan0: cached "+deadMAC.String()+" PERMANENT, no answer\n") {
			t.Errorf("want exit 1, a WARNING line and the dead peer\n%s", o)
		}
		o = arpcheck(t, l.Prober, args("verify", "--format", "nagios", okIP.String()))
		if o.status != 0 || !strings.HasPrefix(o.stdout, "ARPCHECK OK - 1 peer checked | checked=1;;;0 ok=1;;;0 ") || strings.Count(o.stdout, "\n") != 1 {
			t.Errorf("want exit 0 and an OK line\n%s", o)
		}
	})
}

// Peers from standard input, and from the whole table.
func TestE2EChoosingPeers(t *testing.T) {
	l := newLab(t, netlink.NUD_PERMANENT)
	t.Run("stdin", func(t *testing.T) {
		inv := args("verify", "--format", "json", "--peers", "-")
		inv.stdin = "# from ip -4 neigh show\n" + okIP.String() + " dev lan0 lladdr " + netns.HostMAC(1).String() + " PERMANENT\n\n" +
			deadIP.String() + "\n" + okIP.String() + "\n"
		o := arpcheck(t, l.Prober, inv)
		r := parseJSON(t, o)
		if o.status != 1 || len(r.Peers) != 2 || r.Peers[0].IP != okIP.String() || r.Peers[1].IP != deadIP.String() {
			t.Errorf("want exit 1 and peers %s, %s once each\n%s", okIP, deadIP, o)
		}
	})
	t.Run("arguments and a file together", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "peers")
		if err := os.WriteFile(path, []byte(uncachedIP.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o := arpcheck(t, l.Prober, args("verify", "--format", "json", "--peers", path, okIP.String()))
		r := parseJSON(t, o)
		if o.status != 0 || len(r.Peers) != 2 || r.Peers[0].IP != okIP.String() || r.Peers[1].IP != uncachedIP.String() {
			t.Errorf("want exit 0 and peers %s, %s\n%s", okIP, uncachedIP, o)
		}
	})
	t.Run("a prefix", func(t *testing.T) {
		o := arpcheck(t, l.Prober, args("verify", "--format", "json", "198.18.0.0/29"))
		r := parseJSON(t, o)
		// .1 is the prober's own address: offlink. Nobody has .0, .4 or .7:
		// dead. auto finds no conflict behind .5's healthy entry: ok.
		want := map[string]int{"checked": 8, "ok": 2, "stale": 1, "dead": 3, "conflict": 0, "uncached": 1,
			"offlink": 1, "unknown": 0, "repaired": 0, "deleted": 0}
		if !mapsEqual(r.Summary, want) {
			t.Errorf("summary %v; want %v\n%s", r.Summary, want, o)
		}
	})
	t.Run("the whole table", func(t *testing.T) {
		o := arpcheck(t, l.Prober, args("verify", "--format", "json"))
		r := parseJSON(t, o)
		var got []string
		for _, p := range r.Peers {
			got = append(got, p.IP)
		}
		slices.Sort(got)
		want := []string{okIP.String(), staleIP.String(), deadIP.String(), conflictIP.String()}
		slices.Sort(want)
		if o.status != 2 || !slices.Equal(got, want) {
			t.Errorf("peers %v; want the table's %v and exit 2\n%s", got, want, o)
		}
	})
}
