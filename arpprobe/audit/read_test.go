package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// fakeSysctls is a /proc/sys of a map; a path not in it does not exist.
type fakeSysctls map[string]string

func (f fakeSysctls) ReadSysctl(p string) (string, error) {
	v, ok := f[p]
	if !ok {
		return "", fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
	}
	return v, nil
}

// fakeTable is a neighbour table of fixed links and entries.
type fakeTable struct {
	links     []arpprobe.Link
	neighbors []arpprobe.Neighbor
	err       error
}

func (f *fakeTable) Links(context.Context) ([]arpprobe.Link, error) { return f.links, f.err }
func (f *fakeTable) Neighbors(context.Context) ([]arpprobe.Neighbor, error) {
	return f.neighbors, f.err
}

func TestRead(t *testing.T) {
	sys := fakeSysctls{
		"net/ipv4/neigh/eth0/base_reachable_time_ms": "30000", "net/ipv4/neigh/eth0/locktime": "100\n",
		"net/ipv4/conf/all/arp_accept": "0", "net/ipv4/conf/eth0/arp_accept": "1",
		"net/ipv4/conf/all/arp_notify": "1", "net/ipv4/conf/eth0/arp_notify": "0",
		"net/ipv4/conf/all/drop_gratuitous_arp": "1", "net/ipv4/conf/eth0/drop_gratuitous_arp": "0",
		"net/ipv4/conf/all/proxy_arp": "0", "net/ipv4/conf/eth0/proxy_arp": "0",
		"net/ipv4/neigh/default/gc_thresh1": "128", "net/ipv4/neigh/default/gc_thresh2": "512",
		"net/ipv4/neigh/default/gc_thresh3": "1024",
	}
	ip := netip.MustParseAddr
	table := &fakeTable{
		links: []arpprobe.Link{{Index: 1, Name: "lo", Loopback: true}, {Index: 2, Name: "eth0"},
			{Index: 3, Name: "tun0", NoARP: true}},
		neighbors: []arpprobe.Neighbor{
			{IP: ip("198.18.0.1"), Ifindex: 2, State: arpprobe.StateReachable},
			{IP: ip("198.18.0.2"), Ifindex: 2, State: arpprobe.StatePermanent},
			{IP: ip("198.18.0.3"), Ifindex: 2, State: arpprobe.StateStale, Flags: arpprobe.FlagExternLearned},
			{IP: ip("198.18.0.4"), Ifindex: 2, State: arpprobe.StateStale},
			{IP: ip("127.0.0.1"), Ifindex: 1, State: arpprobe.StateNoARP},
		},
	}
	files := fstest.MapFS{"proc/net/stat/arp_cache": {Data: []byte(
		"entries  allocs   destroys\n000002c1 00000001 00000001\n000002c1 00000011 0000000f\n")}}
	h, err := Read(t.Context(), Source{Sysctls: sys, Table: table, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Interfaces) != 1 {
		t.Fatalf("interfaces %+v, want eth0 only", h.Interfaces)
	}
	got := h.Interfaces[0]
	tests := []struct{ what, got, want string }{
		{"neigh", fmt.Sprint(got.Neigh), "map[base_reachable_time_ms:30000 locktime:100]"},
		{"conf", fmt.Sprint(got.Conf),
			"map[arp_accept:{1 eth0} arp_notify:{1 all} drop_gratuitous_arp:{1 all} proxy_arp:{0 eth0}]"},
		{"permanent", fmt.Sprint(got.Permanent), "[198.18.0.2]"},
		{"extern_learn", fmt.Sprint(got.ExternLearned), "[198.18.0.3]"},
		{"counted", fmt.Sprint(got.Counted), "2"},
		{"gc_thresh", fmt.Sprint(h.GCThresh, h.HaveGCThresh), "[128 512 1024] true"},
		{"host entries", fmt.Sprint(h.HostEntries, h.HaveHostEntries), "705 true"},
		{"runs", fmt.Sprint(h.HaveRuns, h.Runs.Any()), "true false"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.what, tt.got, tt.want)
		}
	}
}

func TestReadErrors(t *testing.T) {
	table := &fakeTable{links: []arpprobe.Link{{Index: 2, Name: "eth0"}}}
	perm := fmt.Errorf("open: %w", os.ErrPermission)
	tests := []struct {
		name  string
		sys   Sysctls
		table *fakeTable
		files fs.FS
		want  string // in the error
		is    error
	}{
		{name: "netlink fails", sys: fakeSysctls{}, table: &fakeTable{err: perm}, want: "audit: open", is: os.ErrPermission},
		{name: "a sysctl that is not a number", sys: fakeSysctls{"net/ipv4/neigh/eth0/locktime": "soon"}, table: table,
			want: `sysctl net/ipv4/neigh/eth0/locktime: "soon" is not a number`},
		{name: "a sysctl that cannot be read", sys: errSysctls{perm}, table: table,
			want: "audit: read sysctl net/ipv4/neigh/eth0/base_reachable_time_ms", is: os.ErrPermission},
		{name: "arp_cache of another layout", sys: fakeSysctls{}, table: table,
			files: fstest.MapFS{"proc/net/stat/arp_cache": {Data: []byte("nonsense\n")}}, want: "not the layout expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(t.Context(), Source{Sysctls: tt.sys, Table: tt.table, Files: tt.files})
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("error %v, want one with %q (is %v)", err, tt.want, tt.is)
			}
		})
	}
}

type errSysctls struct{ err error }

func (e errSysctls) ReadSysctl(string) (string, error) { return "", e.err }

func TestEffective(t *testing.T) {
	tests := []struct {
		larger   bool
		all, dev int
		want     ConfValue
	}{
		{true, 0, 0, ConfValue{0, "eth0"}}, {true, 2, 1, ConfValue{2, "all"}}, {true, 1, 2, ConfValue{2, "eth0"}},
		{false, 0, 0, ConfValue{0, "eth0"}}, {false, 1, 0, ConfValue{1, "all"}}, {false, 0, 1, ConfValue{1, "eth0"}},
		{false, 1, 1, ConfValue{1, "eth0"}},
	}
	for _, tt := range tests {
		if got := effective(tt.larger, "eth0", tt.all, tt.dev); got != tt.want {
			t.Errorf("effective(larger %v, all %d, eth0 %d) = %v, want %v", tt.larger, tt.all, tt.dev, got, tt.want)
		}
	}
}

func TestReadRuns(t *testing.T) {
	cmdline := func(args ...string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(strings.Join(args, "\x00") + "\x00")}
	}
	cron, err := os.ReadFile("../../examples/deploy/cron/arpcheck")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files fstest.MapFS
		want  Runs
	}{
		{name: "nothing", files: fstest.MapFS{"proc/1/cmdline": cmdline("/sbin/init")}},
		{name: "watch processes, not other commands",
			files: fstest.MapFS{"proc/7/cmdline": cmdline("/usr/local/bin/arpcheck", "watch", "--repair"),
				"proc/12/cmdline": cmdline("arpcheck", "watch"), "proc/13/cmdline": cmdline("arpcheck", "verify"),
				"proc/14/cmdline": cmdline("/usr/bin/vi", "watch"), "proc/self/cmdline": cmdline("arpcheck", "watch")},
			want: Runs{WatchPIDs: []int{7, 12}}},
		{name: "units enabled",
			files: fstest.MapFS{"etc/systemd/system/multi-user.target.wants/arpcheck-watch.service": {},
				"etc/systemd/system/arpcheck.timer":                         {}, // installed, not enabled
				"usr/lib/systemd/system/timers.target.wants/arpcheck.timer": {}},
			want: Runs{Units: []string{"arpcheck-watch.service (/etc/systemd/system/multi-user.target.wants/arpcheck-watch.service)",
				"arpcheck.timer (/usr/lib/systemd/system/timers.target.wants/arpcheck.timer)"}}},
		{name: "the example cron file installed",
			files: fstest.MapFS{"etc/cron.d/arpcheck": {Data: cron}},
			want:  Runs{Cron: []string{"/etc/cron.d/arpcheck: * * * * * root /usr/local/bin/arpcheck repair -q --lock /run/arpcheck.lock"}}},
		{name: "cron files that do not run it",
			files: fstest.MapFS{"etc/cron.d/arpcheck.dpkg-old": {Data: cron}, "etc/cron.d/arpcheck~": {Data: cron},
				"etc/cron.d/other": {Data: []byte("# * * * * * root arpcheck repair\n* * * * * root arpcheck version\n")}}},
		{name: "a user's crontab",
			files: fstest.MapFS{"var/spool/cron/crontabs/ops": {Data: []byte("*/5 * * * * arpcheck verify -q 198.18.0.0/24\n")}},
			want:  Runs{Cron: []string{"/var/spool/cron/crontabs/ops: */5 * * * * arpcheck verify -q 198.18.0.0/24"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadRuns(tt.files)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.WatchPIDs, tt.want.WatchPIDs) || !slices.Equal(got.Units, tt.want.Units) ||
				!slices.Equal(got.Cron, tt.want.Cron) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
