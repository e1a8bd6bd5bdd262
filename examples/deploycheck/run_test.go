package deploycheck

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/internal/netns"
)

// The command lines of the deployment files, run as they are (with
// their files moved to a temporary directory) on a LAN of namespaces:
// silent when all is well, the documented exit status and output when an
// entry is stale, and the stale entry repaired by the repair lines.
func TestDeployCommandsRun(t *testing.T) {
	var (
		prefix = netip.MustParsePrefix("198.18.1.1/24")
		a      = netip.MustParseAddr("198.18.1.2")
		b      = netip.MustParseAddr("198.18.1.3")
		oldMAC = net.HardwareAddr{0x02, 0, 0, 0, 0xee, 0x03} // b's before it was replaced
	)
	lan := netns.NewLANT(t, prefix, a, b)
	cli(t) // build it before the clock of any command starts
	seed := func(ip netip.Addr, mac net.HardwareAddr) {
		t.Helper()
		if err := lan.Prober.AddNeigh(netns.LANIface, ip, mac, netlink.NUD_STALE, 0); err != nil {
			t.Fatal(err)
		}
	}
	seed(a, netns.HostMAC(1))
	seed(b, netns.HostMAC(2))

	dir := t.TempDir()
	cmds := map[string][]string{}
	var prom string // the file the systemd service writes
	for _, c := range commands(t) {
		args := []string{c.args[0]}
		for i, arg := range c.args[1:] {
			if filepath.IsAbs(arg) {
				arg = filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(arg, "/"), "/", "_"))
				if c.args[i] == "--output" {
					prom = arg
				}
			}
			args = append(args, arg)
		}
		cmds[filepath.Dir(c.file)] = args
	}
	if prom == "" {
		t.Fatal("the systemd service has no --output")
	}
	run := func(which string) (int, string, string) {
		t.Helper()
		return runArgs(withTimeout(t), t, lan.Prober.Do, cmds[which])
	}

	// All is well: cron's line says nothing; the service writes its
	// metrics and nothing else; Nagios gets one OK line.
	if status, out, errOut := run("cron"); status != 0 || out != "" || errOut != "" {
		t.Errorf("cron line on a healthy cache: exit %d, stdout %q, stderr %q; want 0 and silence", status, out, errOut)
	}
	if status, out, errOut := run("systemd"); status != 0 || out != "" || errOut != "" {
		t.Errorf("systemd service on a healthy cache: exit %d, stdout %q, stderr %q; want 0 and silence", status, out, errOut)
	}
	healthy := readProm(t, prom)
	status, out, errOut := run("nagios")
	if status != 0 || !strings.HasPrefix(out, "ARPCHECK OK") || strings.Count(out, "\n") != 1 {
		t.Errorf("nagios command on a healthy cache: exit %d, stdout %q (stderr %q); want 0 and one line ARPCHECK OK ...", status, out, errOut)
	}

	// b was replaced: the cache still holds its old MAC. (The kernel
	// takes the new owner's reply to a broadcast request and heals a
	// STALE entry by itself, so each command gets a freshly wrong one.)
	seed(b, oldMAC)
	status, out, errOut = run("nagios")
	if status != 2 || !strings.HasPrefix(out, "ARPCHECK CRITICAL") || !strings.Contains(out, "|") {
		t.Errorf("nagios command on a stale entry: exit %d, stdout %q (stderr %q); want 2 and ARPCHECK CRITICAL ... | perfdata", status, out, errOut)
	}

	for _, which := range []string{"systemd", "cron"} {
		seed(b, oldMAC)
		if status, out, errOut := run(which); status != 0 {
			t.Errorf("%s line on a stale entry: exit %d, stdout %q, stderr %q; want 0 (repaired)", which, status, out, errOut)
		}
		n, err := lan.Prober.Neigh(netns.LANIface, b)
		if err != nil {
			t.Fatal(err)
		}
		if n == nil || n.HardwareAddr.String() != netns.HostMAC(2).String() {
			t.Errorf("after the %s line: entry for %s is %v; want %s", which, b, n, netns.HostMAC(2))
		}
		if which == "systemd" {
			const staleSeries = `arpcheck_peers{command="repair",verdict="stale"}`
			broken := readProm(t, prom)
			if healthy[staleSeries] != 0 || broken[staleSeries] != 1 {
				t.Errorf("%s: %v on a healthy cache, %v with one stale entry; want 0 and 1", staleSeries, healthy[staleSeries], broken[staleSeries])
			}
			// The metrics node_exporter/README.md documents and alerts on exist.
			for _, name := range regexp.MustCompile(`arpcheck_[a-z_]+`).FindAllString(read(t, "node_exporter/README.md"), -1) {
				if !hasFamily(broken, name) && name != "arpcheck_" {
					t.Errorf("node_exporter/README.md names %s, which the service does not write", name)
				}
			}
		}
	}
}

// readProm reads and checks a metrics file the service wrote.
func readProm(t *testing.T, name string) map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("the service's metrics file: %v", err)
	}
	series, err := parsePromText(string(b))
	if err != nil {
		t.Fatalf("%s is not valid Prometheus text: %v\n%s", name, err, b)
	}
	n := 0
	for k := range series {
		if strings.HasPrefix(k, "arpcheck_") {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s has no arpcheck_ series:\n%s", name, b)
	}
	return series
}

// hasFamily reports whether series holds a metric called name.
func hasFamily(series map[string]float64, name string) bool {
	for k := range series {
		if k == name || strings.HasPrefix(k, name+"{") {
			return true
		}
	}
	return false
}
