package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/arpcheck/arpcheck/arpprobe/audit"
	"github.com/arpcheck/arpcheck/internal/netns"
)

func TestWriteDoctor(t *testing.T) {
	findings := []audit.Finding{
		{Severity: audit.Info, Interface: "eth0", Setting: "net.ipv4.conf.eth0.arp_notify", Value: "0",
			Meaning: "m1", Fix: "f1"},
		{Severity: audit.Warning, Interface: "eth0", Setting: "net.ipv4.neigh.eth0.locktime", Value: "300",
			Meaning: "m2", Fix: "f2"},
		{Severity: audit.Critical, Setting: "net.ipv4.neigh.default.gc_thresh3", Value: "v3", Meaning: "m3", Fix: "f3"},
		{Severity: audit.Info, Setting: "arpcheck", Value: "watch running (pid 7)", Meaning: "m4"},
	}
	tests := []struct {
		name     string
		findings []audit.Finding
		text     string
		json     string
	}{
		{name: "most urgent first", findings: findings,
			text: `CRITICAL host     net.ipv4.neigh.default.gc_thresh3 = v3
         m3
         change: f3
WARNING  eth0     net.ipv4.neigh.eth0.locktime = 300
         m2
         change: f2
INFO     eth0     net.ipv4.conf.eth0.arp_notify = 0
         m1
         option: f1
INFO     host     arpcheck = watch running (pid 7)
         m4
doctor: 1 critical and 1 warning need attention, 2 notes
`,
			json: `{"version":1,"command":"doctor","attention":true,"findings":[` +
				`{"severity":"critical","interface":"","setting":"net.ipv4.neigh.default.gc_thresh3","value":"v3","meaning":"m3","fix":"f3"},` +
				`{"severity":"warning","interface":"eth0","setting":"net.ipv4.neigh.eth0.locktime","value":"300","meaning":"m2","fix":"f2"},` +
				`{"severity":"info","interface":"eth0","setting":"net.ipv4.conf.eth0.arp_notify","value":"0","meaning":"m1","fix":"f1"},` +
				`{"severity":"info","interface":"","setting":"arpcheck","value":"watch running (pid 7)","meaning":"m4","fix":""}],` +
				`"summary":{"critical":1,"info":2,"warning":1}}`},
		{name: "information only", findings: findings[3:],
			text: "INFO     host     arpcheck = watch running (pid 7)\n         m4\ndoctor: nothing needs attention (1 note)\n",
			json: `{"version":1,"command":"doctor","attention":false,"findings":[` +
				`{"severity":"info","interface":"","setting":"arpcheck","value":"watch running (pid 7)","meaning":"m4","fix":""}],` +
				`"summary":{"critical":0,"info":1,"warning":0}}`},
		{name: "nothing at all",
			text: "doctor: nothing needs attention (0 notes)\n",
			json: `{"version":1,"command":"doctor","attention":false,"findings":[],"summary":{"critical":0,"info":0,"warning":0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text, js, compact bytes.Buffer
			if err := writeDoctorText(&text, tt.findings); err != nil {
				t.Fatal(err)
			}
			if got := text.String(); got != tt.text {
				t.Errorf("text:\ngot\n%s\nwant\n%s", got, tt.text)
			}
			if err := writeDoctorJSON(&js, tt.findings); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&compact, js.Bytes()); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, js.String())
			}
			if got := compact.String(); got != tt.json {
				t.Errorf("json:\ngot  %s\nwant %s", got, tt.json)
			}
		})
	}
}

// doctorNS returns a namespace with a veth pair, eth0 (198.18.0.1/24) and
// peer0, both up, gone when the test ends.
func doctorNS(t *testing.T) *netns.NS {
	return netns.NewPairT(t, "eth0", "peer0", netip.MustParsePrefix("198.18.0.1/24"))
}

// doctor runs arpcheck doctor --format json in ns and returns its exit
// status and report.
func doctor(t *testing.T, ns *netns.NS, inv invocation) (outcome, jsonDoctor) {
	t.Helper()
	inv.args = append([]string{"doctor", "--format", "json"}, inv.args...)
	o := arpcheck(t, ns, inv)
	var j jsonDoctor
	if o.status != exitUnknown {
		if err := json.Unmarshal([]byte(o.stdout), &j); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, o)
		}
	}
	return o, j
}

// The binary in a namespace: it finds what was set there, exits 1 when
// something needs attention and 0 otherwise, and needs no privilege.
// Whether arpcheck runs on this host is host-wide (other tests may be
// running arpcheck watch): the exit status is checked against what the
// report says of it.
func TestE2EDoctor(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x01}
	tests := []struct {
		name   string
		setup  func(*testing.T, *netns.NS)
		inv    invocation
		want   []string // findings that need attention, besides "arpcheck"
		status int      // -1: 0 or 1, by whether arpcheck runs on the host
	}{
		{name: "clean namespace", setup: func(*testing.T, *netns.NS) {}, status: -1},
		{name: "clean namespace, as nobody", setup: func(*testing.T, *netns.NS) {},
			inv: invocation{nobody: true}, status: -1},
		{name: "locktime and a PERMANENT entry", setup: func(t *testing.T, ns *netns.NS) {
			if err := ns.Sysctl("net/ipv4/neigh/eth0/locktime", "300"); err != nil {
				t.Fatal(err)
			}
			if err := ns.AddNeigh("eth0", netip.MustParseAddr("198.18.0.9"), mac, netlink.NUD_PERMANENT, 0); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"warning eth0 net.ipv4.neigh.eth0.locktime=300", "warning eth0 PERMANENT entries=1: 198.18.0.9"},
			status: 1},
		{name: "one interface only", setup: func(t *testing.T, ns *netns.NS) {
			if err := ns.Sysctl("net/ipv4/conf/peer0/drop_gratuitous_arp", "1"); err != nil {
				t.Fatal(err)
			}
		}, inv: invocation{args: []string{"-i", "eth0"}}, status: -1},
		{name: "the other interface", setup: func(t *testing.T, ns *netns.NS) {
			if err := ns.Sysctl("net/ipv4/conf/peer0/drop_gratuitous_arp", "1"); err != nil {
				t.Fatal(err)
			}
		}, inv: invocation{args: []string{"-i", "peer0"}},
			want: []string{"warning peer0 net.ipv4.conf.peer0.drop_gratuitous_arp=1"}, status: 1},
		{name: "an unknown interface", setup: func(*testing.T, *netns.NS) {},
			inv: invocation{args: []string{"-i", "nope0"}}, status: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := doctorNS(t)
			tt.setup(t, ns)
			o, j := doctor(t, ns, tt.inv)
			if tt.status == exitUnknown {
				if o.status != exitUnknown || !strings.Contains(o.stderr, "nope0") {
					t.Errorf("want exit 3 naming the interface\n%s", o)
				}
				return
			}
			var attention []string
			runsWarned := false
			for _, f := range j.Findings {
				if f.Severity == "info" {
					continue
				}
				if f.Setting == "arpcheck" {
					runsWarned = true
					continue
				}
				attention = append(attention, fmt.Sprintf("%s %s %s=%s", f.Severity, f.Interface, f.Setting, f.Value))
			}
			if !slices.Equal(attention, tt.want) {
				t.Errorf("findings that need attention:\ngot  %q\nwant %q\n%s", attention, tt.want, o)
			}
			want := tt.status
			if want < 0 {
				want = exitOK
				if runsWarned {
					want = exitWarning
				}
			}
			if o.status != want || j.Attention != (want == exitWarning) {
				t.Errorf("exit %d, attention %v; want %d\n%s", o.status, j.Attention, want, o)
			}
			if o.stderr != "" {
				t.Errorf("stderr: %s", o.stderr)
			}
		})
	}
}

// doctor sees a running arpcheck watch, by its process id.
func TestE2EDoctorSeesWatch(t *testing.T) {
	ns := doctorNS(t)
	cmd, stdout, stderr := start(t, ns, invocation{args: []string{"watch", "--interval", "1h"}})
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	want := fmt.Sprintf("watch running (pid %d)", cmd.Process.Pid)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, j := doctor(t, ns, invocation{})
		i := slices.IndexFunc(j.Findings, func(f jsonFinding) bool { return f.Setting == "arpcheck" })
		if i >= 0 && j.Findings[i].Severity == "info" && strings.Contains(j.Findings[i].Value, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("doctor does not report %q: %+v\nwatch's stdout:\n%s\nstderr:\n%s", want, j.Findings, stdout, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
