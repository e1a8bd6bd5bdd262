package audit

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// defaults is an interface with the kernel's default settings and no
// entries.
func defaults(name string) Interface {
	return Interface{
		Name: name,
		Neigh: map[string]int{"base_reachable_time_ms": 30000, "delay_first_probe_time": 5, "gc_stale_time": 60,
			"locktime": 100, "proxy_delay": 80, "retrans_time_ms": 1000, "ucast_solicit": 3},
		Conf: map[string]ConfValue{"arp_accept": {0, name}, "arp_notify": {0, name},
			"drop_gratuitous_arp": {0, name}, "proxy_arp": {0, name}},
	}
}

// brief is a finding as the tests compare them.
func brief(f Finding) string {
	return fmt.Sprintf("%s %s %s=%s", f.Severity, f.Interface, f.Setting, f.Value)
}

func briefs(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, brief(f))
	}
	return out
}

func TestCheckInterface(t *testing.T) {
	addrs := func(n int) []netip.Addr {
		var out []netip.Addr
		for i := range n {
			out = append(out, netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}))
		}
		return out
	}
	tests := []struct {
		name   string
		change func(*Interface)
		want   []string
	}{
		{name: "defaults, but arp_notify on", change: func(*Interface) {}},
		{name: "arp_notify off, the kernel's default, is information",
			change: func(i *Interface) { i.Conf["arp_notify"] = ConfValue{0, "eth0"} },
			want:   []string{"info eth0 net.ipv4.conf.eth0.arp_notify=0"}},
		{name: "base_reachable_time_ms above the default",
			change: func(i *Interface) { i.Neigh["base_reachable_time_ms"] = 30001 },
			want:   []string{"warning eth0 net.ipv4.neigh.eth0.base_reachable_time_ms=30001"}},
		{name: "base_reachable_time_ms below the default is fine",
			change: func(i *Interface) { i.Neigh["base_reachable_time_ms"] = 10000 }},
		{name: "delay_first_probe_time above the default",
			change: func(i *Interface) { i.Neigh["delay_first_probe_time"] = 30 },
			want:   []string{"warning eth0 net.ipv4.neigh.eth0.delay_first_probe_time=30"}},
		{name: "locktime above the default",
			change: func(i *Interface) { i.Neigh["locktime"] = 500 },
			want:   []string{"warning eth0 net.ipv4.neigh.eth0.locktime=500"}},
		{name: "locktime zero is fine", change: func(i *Interface) { i.Neigh["locktime"] = 0 }},
		{name: "gc_stale_time above the default is information",
			change: func(i *Interface) { i.Neigh["gc_stale_time"] = 600 },
			want:   []string{"info eth0 net.ipv4.neigh.eth0.gc_stale_time=600"}},
		{name: "drop_gratuitous_arp on the interface",
			change: func(i *Interface) { i.Conf["drop_gratuitous_arp"] = ConfValue{1, "eth0"} },
			want:   []string{"warning eth0 net.ipv4.conf.eth0.drop_gratuitous_arp=1"}},
		{name: "drop_gratuitous_arp from conf/all",
			change: func(i *Interface) { i.Conf["drop_gratuitous_arp"] = ConfValue{1, "all"} },
			want:   []string{"warning eth0 net.ipv4.conf.all.drop_gratuitous_arp=1"}},
		{name: "proxy_arp",
			change: func(i *Interface) { i.Conf["proxy_arp"] = ConfValue{1, "eth0"} },
			want:   []string{"warning eth0 net.ipv4.conf.eth0.proxy_arp=1"}},
		{name: "proxy_delay alone says nothing",
			change: func(i *Interface) { i.Neigh["proxy_delay"] = 0 }},
		{name: "arp_accept is information",
			change: func(i *Interface) { i.Conf["arp_accept"] = ConfValue{2, "all"} },
			want:   []string{"info eth0 net.ipv4.conf.all.arp_accept=2"}},
		{name: "PERMANENT entries",
			change: func(i *Interface) { i.Permanent = addrs(2) },
			want:   []string{"warning eth0 PERMANENT entries=2: 198.18.0.1, 198.18.0.2"}},
		{name: "many PERMANENT entries are counted, a few named",
			change: func(i *Interface) { i.Permanent = addrs(7) },
			want: []string{"warning eth0 PERMANENT entries=7: 198.18.0.1, 198.18.0.2, 198.18.0.3, 198.18.0.4, 198.18.0.5" +
				" and 2 more"}},
		{name: "extern_learn entries are information",
			change: func(i *Interface) { i.ExternLearned = addrs(1) },
			want:   []string{"info eth0 extern_learn entries=1: 198.18.0.1"}},
		{name: "a kernel without some sysctls", change: func(i *Interface) {
			delete(i.Neigh, "locktime")
			delete(i.Conf, "drop_gratuitous_arp")
		}},
		{name: "an interface name with a dot",
			change: func(i *Interface) { i.Name = "eth0.100"; i.Neigh["locktime"] = 200 },
			want:   []string{"warning eth0.100 net.ipv4.neigh.eth0/100.locktime=200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ifc := defaults("eth0")
			ifc.Conf["arp_notify"] = ConfValue{1, "eth0"} // 0, the default, is a finding of its own
			tt.change(&ifc)
			got := briefs(checkInterface(&ifc))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// Every finding says what it means and, when it needs attention, what to
// change; the healing times follow the settings.
func TestCheckTexts(t *testing.T) {
	ifc := defaults("eth0")
	ifc.Neigh["base_reachable_time_ms"] = 60000
	ifc.Neigh["delay_first_probe_time"] = 10
	ifc.Neigh["locktime"] = 250
	ifc.Neigh["proxy_delay"] = 20
	ifc.Conf["drop_gratuitous_arp"] = ConfValue{1, "eth0"}
	ifc.Conf["proxy_arp"] = ConfValue{1, "all"}
	ifc.Permanent = []netip.Addr{netip.MustParseAddr("198.18.0.9")}
	h := &Host{Interfaces: []Interface{ifc}, HaveGCThresh: true, GCThresh: [3]int{128, 512, 1024}, HaveRuns: true}
	tests := []struct{ setting, meaning, fix string }{
		{"net.ipv4.neigh.eth0.base_reachable_time_ms", "trusted for 30–90 s before the kernel asks again: it heals in 43–103 s",
			"sysctl -w net.ipv4.neigh.eth0.base_reachable_time_ms=30000"},
		{"net.ipv4.neigh.eth0.delay_first_probe_time", "it heals in about 13 s", "=5"},
		{"net.ipv4.neigh.eth0.locktime", "ignored for 2.5 s", "=100"},
		{"net.ipv4.conf.eth0.drop_gratuitous_arp", "about 13 s from STALE, 43–103 s from REACHABLE", "drop_gratuitous_arp=0"},
		{"net.ipv4.conf.all.proxy_arp", "after a random 0–0.2 s (proxy_delay 20)", "sysctl -w net.ipv4.conf.all.proxy_arp=0"},
		{"PERMANENT entries", "never heals", "ip neigh del ADDRESS dev eth0"},
		{"arpcheck", "about 8 s from STALE", "arpcheck-watch.service"},
	}
	found := Check(h)
	for _, tt := range tests {
		i := slices.IndexFunc(found, func(f Finding) bool { return f.Setting == tt.setting })
		if i < 0 {
			t.Errorf("no finding for %s in %q", tt.setting, briefs(found))
			continue
		}
		f := found[i]
		if !strings.Contains(f.Meaning, tt.meaning) || !strings.Contains(f.Fix, tt.fix) {
			t.Errorf("%s:\ngot  meaning %q, fix %q\nwant meaning with %q, fix with %q", tt.setting, f.Meaning, f.Fix, tt.meaning, tt.fix)
		}
	}
	for _, f := range found {
		if f.Meaning == "" || (f.Severity >= Warning && f.Fix == "") {
			t.Errorf("%s: meaning %q, fix %q", brief(f), f.Meaning, f.Fix)
		}
	}
}

func TestCheckTable(t *testing.T) {
	thresh := [3]int{128, 512, 1024}
	ifc := func(counted, permanent int) Interface {
		i := Interface{Name: "eth0", Counted: counted}
		for range permanent {
			i.Permanent = append(i.Permanent, netip.MustParseAddr("198.18.0.1"))
		}
		return i
	}
	tests := []struct {
		name string
		h    Host
		want []string
	}{
		{name: "thresholds not visible (not the initial namespace)",
			h:    Host{Interfaces: []Interface{ifc(3, 0)}},
			want: []string{"info  net.ipv4.neigh.default.gc_thresh1-3=not visible (3 entries here)"}},
		{name: "below gc_thresh1", h: Host{Interfaces: []Interface{ifc(128, 0)}, GCThresh: thresh, HaveGCThresh: true}},
		{name: "above gc_thresh1",
			h:    Host{Interfaces: []Interface{ifc(129, 0)}, GCThresh: thresh, HaveGCThresh: true},
			want: []string{"info  net.ipv4.neigh.default.gc_thresh1=128/512/1024, 129 entries here"}},
		{name: "above gc_thresh2",
			h:    Host{Interfaces: []Interface{ifc(513, 0)}, GCThresh: thresh, HaveGCThresh: true},
			want: []string{"warning  net.ipv4.neigh.default.gc_thresh2=128/512/1024, 513 entries here"}},
		{name: "at gc_thresh3",
			h:    Host{Interfaces: []Interface{ifc(1024, 0)}, GCThresh: thresh, HaveGCThresh: true},
			want: []string{"critical  net.ipv4.neigh.default.gc_thresh3=128/512/1024, 1024 entries here"}},
		{name: "other namespaces' entries count; PERMANENT ones do not",
			h: Host{Interfaces: []Interface{ifc(10, 400)}, GCThresh: thresh, HaveGCThresh: true,
				HostEntries: 1000, HaveHostEntries: true},
			want: []string{"warning  net.ipv4.neigh.default.gc_thresh2=128/512/1024, 600 entries counted host-wide (1000 in all, 400 of them exempt here)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := briefs(checkTable(&tt.h))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCheckRuns(t *testing.T) {
	tests := []struct {
		name string
		r    Runs
		want string
	}{
		{name: "nothing", want: "warning  arpcheck=no watch process, systemd unit or cron job"},
		{name: "a watch process", r: Runs{WatchPIDs: []int{42}}, want: "info  arpcheck=watch running (pid 42)"},
		{name: "a unit and cron", r: Runs{Units: []string{"arpcheck.timer (/etc/systemd/system/timers.target.wants/arpcheck.timer)"},
			Cron: []string{"/etc/cron.d/arpcheck: * * * * * root arpcheck repair"}},
			want: "info  arpcheck=unit arpcheck.timer (/etc/systemd/system/timers.target.wants/arpcheck.timer) enabled; " +
				"cron /etc/cron.d/arpcheck: * * * * * root arpcheck repair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := brief(checkRuns(tt.r)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestNeedsAttention(t *testing.T) {
	tests := []struct {
		sevs []Severity
		want bool
	}{
		{nil, false}, {[]Severity{Info, Info}, false}, {[]Severity{Info, Warning}, true}, {[]Severity{Critical}, true},
	}
	for _, tt := range tests {
		var fs []Finding
		for _, s := range tt.sevs {
			fs = append(fs, Finding{Severity: s})
		}
		if got := NeedsAttention(fs); got != tt.want {
			t.Errorf("NeedsAttention(%v) = %v, want %v", tt.sevs, got, tt.want)
		}
	}
}

// Without the host's files, Read does not look for how arpcheck runs,
// and Check says nothing of it rather than that nothing runs.
func TestCheckRunsNotRead(t *testing.T) {
	h := &Host{Interfaces: []Interface{defaults("eth0")}, HaveGCThresh: true, GCThresh: [3]int{128, 512, 1024}}
	for _, f := range Check(h) {
		if f.Setting == "arpcheck" {
			t.Errorf("runs not read, yet: %s", brief(f))
		}
	}
}
