package deploycheck

import (
	"net"
	"path"
	"slices"
	"strings"
	"testing"
)

// watchUnit is the long-running unit: arpcheck watch --repair.
const watchUnit = "systemd/arpcheck-watch.service"

// tracepointsDropIn is the watch unit's optional drop-in that lets it use
// the neigh tracepoints.
const tracepointsDropIn = "systemd/arpcheck-watch.service.d/tracepoints.conf"

// serviceKey returns the one value of key in the unit's [Service]
// section, failing the test if it is set more than once or not at all.
func serviceKey(t *testing.T, u map[string]map[string][]string, key string) string {
	t.Helper()
	if v := u["Service"][key]; len(v) != 1 {
		t.Fatalf("%s: [Service] %s set %d times; want once", watchUnit, key, len(v))
	}
	return u["Service"][key][0]
}

// watchArgs returns the unit's ExecStart, split into words, checked to be
// the installed arpcheck running watch.
func watchArgs(t *testing.T, u map[string]map[string][]string) []string {
	t.Helper()
	args := strings.Fields(strings.TrimLeft(serviceKey(t, u, "ExecStart"), "-@:+!"))
	for _, a := range args {
		if strings.ContainsAny(a, `"'\$;|&<>(){}*?~`+"`") {
			t.Errorf("%s: ExecStart word %q: quoting or shell syntax; keep it plain", watchUnit, a)
		}
	}
	if len(args) < 2 || args[0] != installedBinary || args[1] != "watch" {
		t.Fatalf("%s: ExecStart=%s; want %s watch ...", watchUnit, strings.Join(args, " "), installedBinary)
	}
	return args
}

// flagValue returns the value given to flag in args ("" if absent).
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// The watch unit's settings agree with each other, with the flags of
// arpcheck watch and with the sysusers file.
func TestWatchUnitConsistent(t *testing.T) {
	u := unitFile(t, watchUnit)
	one := func(key string) string { t.Helper(); return serviceKey(t, u, key) }
	args := watchArgs(t, u)

	known := cliFlags(t, "watch")
	for i := 2; i < len(args); i++ {
		name, _, inline := strings.Cut(args[i], "=")
		if !strings.HasPrefix(name, "-") {
			continue // a peer
		}
		takesValue, ok := known[name]
		switch {
		case !ok:
			t.Errorf("ExecStart: arpcheck watch has no flag %s", name)
		case takesValue && !inline:
			if i+1 == len(args) || strings.HasPrefix(args[i+1], "-") {
				t.Errorf("ExecStart: %s wants a value", name)
			}
			i++
		}
	}
	if !slices.Contains(args, "--repair") {
		t.Errorf("ExecStart=%s: no --repair; the unit promises to repair", strings.Join(args, " "))
	}
	listen := flagValue(args, "--listen")
	if _, _, err := net.SplitHostPort(listen); err != nil {
		t.Errorf("--listen %q: %v; the unit promises metrics", listen, err)
	}

	caps := "CAP_NET_RAW CAP_NET_ADMIN"
	for key, want := range map[string]string{
		"CapabilityBoundingSet": caps, "AmbientCapabilities": caps, "NoNewPrivileges": "yes",
		"ProtectSystem": "strict", "Restart": "on-failure",
		// IP sockets only for the listener: AF_INET6 too, since Go
		// listens on ":port" with one IPv6 socket that takes IPv4 as well.
		"RestrictAddressFamilies": "AF_PACKET AF_NETLINK AF_UNIX AF_INET AF_INET6",
	} {
		if got := one(key); got != want {
			t.Errorf("%s=%s; want %s", key, got, want)
		}
	}
	// The drop-in adds the tracepoints' capabilities and the bpf(2) call
	// that the unit's ~@privileged filter denies, and nothing else.
	d := unitFile(t, tracepointsDropIn)
	bpfCaps := "CAP_BPF CAP_PERFMON"
	for key, want := range map[string]string{"CapabilityBoundingSet": bpfCaps, "AmbientCapabilities": bpfCaps, "SystemCallFilter": "bpf"} {
		if got := serviceKey(t, d, key); got != want {
			t.Errorf("%s: %s=%s; want %s", tracepointsDropIn, key, got, want)
		}
	}
	if len(d) != 1 || len(d["Service"]) != 3 {
		t.Errorf("%s sets %v; want only the three [Service] keys", tracepointsDropIn, d)
	}
	if typ := one("Type"); typ != "exec" && typ != "simple" {
		t.Errorf("Type=%s; want exec or simple (watch runs until stopped and tells systemd nothing)", typ)
	}
	if one("MemoryMax") == "" || one("TasksMax") == "" {
		t.Error("no MemoryMax or TasksMax: a long-running service gets bounds")
	}
	if got := strings.Fields(one("ExecReload")); len(got) != 3 || path.Base(got[0]) != "kill" || got[1] != "-HUP" || got[2] != "$MAINPID" {
		t.Errorf("ExecReload=%s; want kill -HUP $MAINPID (watch reads its peers again on SIGHUP)", one("ExecReload"))
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%v; want multi-user.target", got)
	}
	for _, other := range []string{"arpcheck.timer", "arpcheck.service"} {
		if !slices.Contains(strings.Fields(strings.Join(u["Unit"]["Conflicts"], " ")), other) {
			t.Errorf("[Unit] Conflicts lacks %s: the timer's repairs and watch would run side by side", other)
		}
	}
	user := one("User")
	sysusers := strings.Fields(nonComment(read(t, "systemd/arpcheck.sysusers")))
	if len(sysusers) < 2 || sysusers[1] != user || one("Group") != user {
		t.Errorf("sysusers file creates %v; want user and group %s (User=%s Group=%s)", sysusers, user, user, one("Group"))
	}
}
