package fleetcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/arpcheck/arpcheck/internal/netns"
	"github.com/arpcheck/arpcheck/internal/proctest"
)

// The LAN the DaemonSet's command runs on.
var (
	lanPrefix = netip.MustParsePrefix("198.18.3.1/24")
	peerA     = netip.MustParseAddr("198.18.3.2") // host 1, cached right
	peerB     = netip.MustParseAddr("198.18.3.3") // host 2, cached with oldMAC
	oldMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0xee, 0x03}
)

// need returns the path of tool; without it the test is skipped, or
// failed when CI is true (.ci/run installs it).
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI is true: .ci/run installs it)", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// containerSetpriv returns the setpriv(1) arguments that give a process
// what a container runtime gives the container's process under sc: its
// user and group and no others, a bounding set of only the added
// capabilities (so user 0 gets those and no more at exec, and any other
// user none), nothing inheritable, and no_new_privs unless
// allowPrivilegeEscalation. (What it does not do: a read-only root
// file system and the seccomp profile.)
func containerSetpriv(t *testing.T, sc *corev1.SecurityContext) []string {
	t.Helper()
	if sc == nil || sc.RunAsUser == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Fatalf("securityContext %v: want runAsUser and capabilities drop ALL", sc)
	}
	gid := int64(0)
	if sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	caps := "-all"
	for _, c := range sc.Capabilities.Add {
		caps += ",+" + strings.ToLower(string(c))
	}
	args := []string{"--reuid=" + strconv.FormatInt(*sc.RunAsUser, 10), "--regid=" + strconv.FormatInt(gid, 10),
		"--clear-groups", "--bounding-set=" + caps, "--inh-caps=-all"}
	if sc.AllowPrivilegeEscalation == nil || !*sc.AllowPrivilegeEscalation {
		args = append(args, "--no-new-privs")
	}
	return args
}

// containerEnv returns the environment of the container: a PATH, as an
// empty image has none, and the container's env values.
func containerEnv(t *testing.T, ctr corev1.Container) []string {
	t.Helper()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, e := range ctr.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s: valueFrom is not emulated here", e.Name)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	if len(ctr.EnvFrom) > 0 {
		t.Fatal("envFrom is not emulated here")
	}
	return env
}

// The DaemonSet's container, run as its runtime would start it (the
// image's binary, the container's arguments, user, capabilities and
// no_new_privs) on a LAN of namespaces standing for a node, does what the
// manifests promise: the startup probe's /healthz turns 200 in the time
// the probe allows, a stale entry is repaired, the logs are JSON, the
// metrics hold every series the alerts select, the memory used fits the
// request, and SIGTERM (the kubelet's stop) ends it with status 0 within
// the grace period.
//
// As shipped, it sees entries enter DELAY by reading the table; with the
// capabilities the manifest offers as an option (commented out), through
// the kernel's neigh tracepoints.
func TestDaemonSetRuns(t *testing.T) {
	f := readFleet(t)
	optional := optionalCaps(t)
	if !slices.Equal(optional, []corev1.Capability{"BPF", "PERFMON"}) {
		t.Errorf("the manifest offers %v as optional capabilities; want BPF and PERFMON", optional)
	}
	for _, tt := range []struct {
		name   string
		extra  []corev1.Capability
		source string
	}{
		{"as shipped", nil, "poll"},
		{"with the optional capabilities", optional, "tracepoints"},
	} {
		t.Run(tt.name, func(t *testing.T) { testDaemonSetRuns(t, f, tt.extra, tt.source) })
	}
}

// optionalCaps returns the capabilities the DaemonSet lists, commented
// out, after its added ones.
func optionalCaps(t *testing.T) []corev1.Capability {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir, "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var caps []corev1.Capability
	for _, m := range regexp.MustCompile(`(?m)^\s*#\s*- ([A-Z_]+)\s*$`).FindAllStringSubmatch(string(b), -1) {
		caps = append(caps, corev1.Capability(m[1]))
	}
	return caps
}

func testDaemonSetRuns(t *testing.T, f fleet, extraCaps []corev1.Capability, source string) {
	setpriv := need(t, "setpriv")
	bin := builtImage(t)
	argv := watchCommand(t, f.ctr, bin.img)
	if argv[0] != bin.img.entrypoint[0] {
		t.Fatalf("the container runs %s; the image's binary is %s", argv[0], bin.img.entrypoint[0])
	}
	port := listenPort(t, argv[1:])
	probe := f.ctr.StartupProbe
	if probe == nil {
		probe = f.ctr.ReadinessProbe
	}
	startup := time.Duration(probe.PeriodSeconds*max(probe.FailureThreshold, 1)) * time.Second
	grace := 30 * time.Second // Kubernetes' default
	if g := f.ds.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}

	lan := netns.NewLANT(t, lanPrefix, peerA, peerB)
	for _, seed := range []struct {
		ip  netip.Addr
		mac net.HardwareAddr
	}{{peerA, netns.HostMAC(1)}, {peerB, oldMAC}} {
		if err := lan.Prober.AddNeigh(netns.LANIface, seed.ip, seed.mac, netlink.NUD_STALE, 0); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sc := f.ctr.SecurityContext.DeepCopy()
	sc.Capabilities.Add = append(sc.Capabilities.Add, extraCaps...)
	cmd := exec.CommandContext(ctx, setpriv, append(append(containerSetpriv(t, sc), "--", bin.path), argv[1:]...)...)
	cmd.Env = containerEnv(t, f.ctr)
	cmd.Dir = "/"
	var stderr proctest.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := lan.Prober.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	exited, done := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("the container's output:\n%s", stderr.String())
		}
	}()

	get := proctest.Getter(lan.Prober)
	base := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	started := time.Now()
	proctest.WaitFor(t, min(startup, 30*time.Second), "200 from the startup probe's "+probe.HTTPGet.Path, func() (bool, string) {
		select {
		case <-done:
			t.Fatal("arpcheck exited")
		default:
		}
		status, body, err := get(base + probe.HTTPGet.Path)
		return status == http.StatusOK, fmt.Sprintf("%d %q %v", status, body, err)
	})
	t.Logf("healthy %v after the start", time.Since(started).Round(time.Millisecond))
	proctest.WaitFor(t, 10*time.Second, "the stale entry repaired", func() (bool, string) {
		n, err := lan.Prober.Neigh(netns.LANIface, peerB)
		return err == nil && n != nil && n.HardwareAddr.String() == netns.HostMAC(2).String(), fmt.Sprintf("entry of %s: %v %v", peerB, n, err)
	})

	status, body, err := get(base + "/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("/metrics: %d %v", status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: Prometheus's parser says: %v", err)
	}
	checkAlertSelectors(t, "arpcheck watch's /metrics", alertRules(t), fams)
	sum := func(name string, labelValues ...string) (n float64) {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				for _, v := range labelValues {
					if l.GetValue() == v {
						n += m.GetGauge().GetValue() + m.GetCounter().GetValue()
					}
				}
			}
		}
		return n
	}
	if got := sum("arpcheck_watch_peers", "ok"); got != 2 {
		t.Errorf(`arpcheck_watch_peers{verdict="ok"} = %v; want 2`, got)
	}
	if got := sum("arpcheck_watch_repair_actions_total", "replaced", "healed"); got != 1 {
		t.Errorf("arpcheck_watch_repair_actions_total replaced and healed = %v; want 1", got)
	}
	if got := sum("arpcheck_watch_delay_source", source); got != 1 {
		t.Errorf(`arpcheck_watch_delay_source{source=%q} = %v; want 1`, source, got)
	}

	// Memory: the peak so far, on a LAN of two peers, fits the request
	// with room to spare for a node's hundreds of entries.
	hwm, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	req := f.ctr.Resources.Requests[corev1.ResourceMemory]
	if hwm.Cmp(req) > 0 {
		t.Errorf("peak resident memory %v; the pod requests %v", hwm.String(), req.String())
	}
	t.Logf("peak resident memory %v; request %v", hwm.String(), req.String())

	// The kubelet's stop: SIGTERM, then SIGKILL after the grace period.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v; want exit status 0", err)
		}
	case <-time.After(grace):
		t.Errorf("still running %v after SIGTERM: the kubelet would kill it", grace)
	}

	// --log-format json: every line is an object with a level and a message.
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, line := range lines {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" || rec.Msg == "" {
			t.Errorf("log line %q: not a JSON record with level and msg (%v)", line, err)
		}
	}
	if !strings.Contains(stderr.String(), `"ip":"`+peerB.String()+`"`) {
		t.Errorf("the log does not name the repaired %s", peerB)
	}
}

// peakRSS returns the peak resident memory of a process (VmHWM).
func peakRSS(pid int) (resource.Quantity, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return resource.Quantity{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return resource.Quantity{}, err
			}
			return *resource.NewQuantity(kb*1024, resource.BinarySI), nil
		}
	}
	return resource.Quantity{}, errors.New("no VmHWM in /proc/PID/status")
}

// Why the DaemonSet runs as user 0. A user other than 0, given the
// container's capabilities, keeps them across exec only from file
// capabilities on the binary (Kubernetes sets no ambient ones): without
// them arpcheck has none; with them it works, no_new_privs or not, since
// the runtime put the capabilities in the permitted set before exec. The
// image cannot carry file capabilities (COPY --from drops them, and an
// empty base has no setcap), so such a user would start with none.
func TestNonRootNeedsFileCaps(t *testing.T) {
	setpriv, setcap := need(t, "setpriv"), need(t, "setcap")
	bin := builtImage(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	capped := filepath.Join(dir, "arpcheck")
	b, err := os.ReadFile(bin.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(capped, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(setcap, "cap_net_raw,cap_net_admin+ep", capped).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	lan := netns.NewLANT(t, lanPrefix, peerA)
	sc := readFleet(t).ctr.SecurityContext.DeepCopy()
	nobody := int64(65534)
	sc.RunAsUser, sc.RunAsGroup = &nobody, &nobody

	tests := []struct {
		desc   string
		binary string
		status int
		stderr string
	}{
		{desc: "the image's binary", binary: bin.path, status: 3, stderr: "CAP_NET_RAW"},
		{desc: "a binary with file capabilities", binary: capped, status: 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			args := append(containerSetpriv(t, sc), "--", tt.binary, "verify", peerA.String())
			cmd := exec.Command(setpriv, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := lan.Prober.Do(cmd.Run)
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if got := cmd.ProcessState.ExitCode(); got != tt.status || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("user 65534 with the container's securityContext: exit %d, stderr %q; want %d and %q\nstdout: %s",
					got, stderr.String(), tt.status, tt.stderr, stdout.String())
			}
		})
	}
}
