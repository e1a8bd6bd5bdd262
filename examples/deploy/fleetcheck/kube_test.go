package fleetcheck

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// kubeDir holds the manifests.
const kubeDir = "../kubernetes"

// scheme knows every kind the manifests may hold.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(monitoringv1.AddToScheme(s))
	return s
}()

// decodeManifests decodes every document of a YAML stream into its
// Kubernetes type, strictly: an unknown field, a field given twice or a
// value of the wrong type is an error, where kubectl would only warn or
// drop it.
func decodeManifests(data []byte) ([]runtime.Object, error) {
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if onlyComments(doc) {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, &docError{n: n, err: err}
		}
		objs = append(objs, obj)
	}
}

type docError struct {
	n   int
	err error
}

func (e *docError) Error() string { return "document " + strconv.Itoa(e.n) + ": " + e.err.Error() }
func (e *docError) Unwrap() error { return e.err }

func onlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// manifests decodes one file of kubeDir.
func manifests(t *testing.T, name string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir, name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return objs
}

// only returns the one object of type T in objs.
func only[T runtime.Object](t *testing.T, file string, objs []runtime.Object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%s: %d objects of type %T; want 1", file, len(found), zero)
	}
	return found[0]
}

func TestDecodeManifests(t *testing.T) {
	tests := []struct {
		desc    string
		yaml    string
		kinds   []string
		wantErr string
	}{
		{desc: "two documents and a comment-only one", kinds: []string{"Namespace", "ServiceAccount"},
			yaml: "# just a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b}\n"},
		{desc: "misspelt field", wantErr: `unknown field "spec.template.spec.hostNetwrok"`,
			yaml: "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n"},
		{desc: "field given twice", wantErr: `key "metadata" already set`,
			yaml: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n"},
		{desc: "wrong type", wantErr: "cannot unmarshal",
			yaml: "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      hostNetwork: sure\n"},
		{desc: "bad quantity", wantErr: "quantities must match",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    resources: {limits: {memory: 128 MB}}\n"},
		{desc: "kind unknown here", wantErr: "no kind",
			yaml: "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n"},
		{desc: "prometheus rule with a misspelt field", wantErr: `unknown field "spec.groups[0].rules[0].exrp"`,
			yaml: "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: a}\nspec:\n  groups:\n  - name: g\n    rules:\n    - alert: A\n      exrp: up == 0\n"},
	}
	for _, tt := range tests {
		objs, err := decodeManifests([]byte(tt.yaml))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v; want one containing %q", tt.desc, err, tt.wantErr)
			}
			continue
		}
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, reflect.TypeOf(o).Elem().Name())
		}
		if err != nil || !slices.Equal(kinds, tt.kinds) {
			t.Errorf("%s: %v, error %v; want %v", tt.desc, kinds, err, tt.kinds)
		}
	}
}

// fleet is what daemonset.yaml and podmonitor.yaml hold.
type fleet struct {
	ns  *corev1.Namespace
	sa  *corev1.ServiceAccount
	ds  *appsv1.DaemonSet
	pm  *monitoringv1.PodMonitor
	ctr corev1.Container
}

func readFleet(t *testing.T) fleet {
	t.Helper()
	objs := manifests(t, "daemonset.yaml")
	if len(objs) != 3 {
		t.Errorf("daemonset.yaml: %d objects; want 3 (Namespace, ServiceAccount, DaemonSet)", len(objs))
	}
	f := fleet{
		ns: only[*corev1.Namespace](t, "daemonset.yaml", objs),
		sa: only[*corev1.ServiceAccount](t, "daemonset.yaml", objs),
		ds: only[*appsv1.DaemonSet](t, "daemonset.yaml", objs),
		pm: only[*monitoringv1.PodMonitor](t, "podmonitor.yaml", manifests(t, "podmonitor.yaml")),
	}
	if n := len(f.ds.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("the DaemonSet's pods have %d containers; want 1", n)
	}
	f.ctr = f.ds.Spec.Template.Spec.Containers[0]
	return f
}

// The objects fit together and the API server would take them: names,
// namespaces, the selector, the service account.
func TestDaemonSetObjects(t *testing.T) {
	f := readFleet(t)
	for _, m := range []metav1.Object{f.sa, f.ds, f.pm} {
		if m.GetNamespace() != f.ns.Name {
			t.Errorf("%s is in namespace %q; want %q, the one the file creates", m.GetName(), m.GetNamespace(), f.ns.Name)
		}
	}
	for _, m := range []metav1.Object{f.ns, f.sa, f.ds, f.pm} {
		if errs := validation.IsDNS1123Label(m.GetName()); len(errs) > 0 {
			t.Errorf("name %q: %v", m.GetName(), errs)
		}
	}
	// Pod Security admission: hostNetwork and NET_ADMIN are beyond the
	// baseline level, which would reject every pod.
	if level := f.ns.Labels["pod-security.kubernetes.io/enforce"]; level != "privileged" {
		t.Errorf("namespace enforces pod security level %q; the pods need privileged (hostNetwork, NET_RAW, NET_ADMIN)", level)
	}

	sel, err := metav1.LabelSelectorAsSelector(f.ds.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(f.ds.Spec.Template.Labels)) {
		t.Errorf("DaemonSet selector %v does not select its pods' labels %v (%v)", f.ds.Spec.Selector, f.ds.Spec.Template.Labels, err)
	}
	if f.ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("update strategy %q; want RollingUpdate", f.ds.Spec.UpdateStrategy.Type)
	}
	pod := f.ds.Spec.Template.Spec
	if pod.ServiceAccountName != f.sa.Name {
		t.Errorf("pods run as service account %q; want %q", pod.ServiceAccountName, f.sa.Name)
	}
	// arpcheck never calls the API: no token in the pod.
	if f.sa.AutomountServiceAccountToken == nil || *f.sa.AutomountServiceAccountToken ||
		pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("a service account token is mounted; arpcheck needs none")
	}
}

// The pods run on every node, in the node's network namespace, with the
// two capabilities arpcheck needs and nothing else of the node's.
func TestDaemonSetSecurity(t *testing.T) {
	f := readFleet(t)
	pod := f.ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("hostNetwork is false: arpcheck would watch the pod's own ARP cache, not the node's")
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q; want ClusterFirstWithHostNet with hostNetwork", pod.DNSPolicy)
	}
	if pod.HostPID || pod.HostIPC {
		t.Error("hostPID or hostIPC: arpcheck needs only the network namespace")
	}
	if len(pod.Volumes) > 0 || len(f.ctr.VolumeMounts) > 0 {
		t.Errorf("volumes %v: arpcheck reads and writes no file", pod.Volumes)
	}
	if len(pod.InitContainers) > 0 || len(pod.EphemeralContainers) > 0 {
		t.Error("init or ephemeral containers: only arpcheck runs")
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}) {
		t.Errorf("tolerations %v: none tolerates every taint, so tainted nodes (control plane ...) go unwatched", pod.Tolerations)
	}
	seccomp := pod.SecurityContext
	if sc := f.ctr.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		seccomp = &corev1.PodSecurityContext{SeccompProfile: sc.SeccompProfile}
	}
	if seccomp == nil || seccomp.SeccompProfile == nil || seccomp.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("no RuntimeDefault seccomp profile")
	}

	sc := f.ctr.SecurityContext
	if sc == nil {
		t.Fatal("the container has no securityContext")
	}
	isFalse := func(b *bool) bool { return b != nil && !*b }
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isFalse(sc.Privileged) {
		t.Error("privileged is not false")
	}
	if !isFalse(sc.AllowPrivilegeEscalation) {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v; want ALL", sc.Capabilities)
	}
	if add := sortedCaps(sc.Capabilities.Add); !slices.Equal(add, []string{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("capabilities add %v; want exactly NET_RAW and NET_ADMIN", add)
	}
	// The user is set here, not left to the image. A user other than 0
	// keeps no capability at exec without file capabilities on the
	// binary, which the image cannot carry (see TestNonRootNeedsFileCaps);
	// runAsNonRoot would refuse user 0.
	if sc.RunAsUser == nil {
		t.Error("runAsUser is not set: the image's user would decide")
	} else if *sc.RunAsUser != 0 {
		t.Errorf("runAsUser %d: a user other than 0 starts without NET_RAW and NET_ADMIN (no file capabilities in the image)", *sc.RunAsUser)
	}
	if isTrue(sc.RunAsNonRoot) && (sc.RunAsUser == nil || *sc.RunAsUser == 0) {
		t.Error("runAsNonRoot with user 0: the kubelet refuses to start the container")
	}
}

func sortedCaps(cs []corev1.Capability) []string {
	var s []string
	for _, c := range cs {
		s = append(s, string(c))
	}
	slices.Sort(s)
	return s
}

// Requests and limits of CPU and memory are set, and requests fit in the
// limits. (TestDaemonSetRuns checks the memory watch uses.)
func TestDaemonSetResources(t *testing.T) {
	r := readFleet(t).ctr.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		lim, okLim := r.Limits[name]
		if !okReq || !okLim || req.IsZero() || lim.IsZero() {
			t.Errorf("%s: request %v, limit %v; want both", name, req.String(), lim.String())
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s request %v above its limit %v", name, req.String(), lim.String())
		}
	}
	// Measured (see the comment in daemonset.yaml): 55 MB resident at
	// 5,000 cache entries. Below that a large node's pod is killed over
	// and over.
	if lim := r.Limits[corev1.ResourceMemory]; lim.Cmp(resource.MustParse("64Mi")) < 0 {
		t.Errorf("memory limit %v: below what watch uses with 5,000 entries", lim.String())
	}
}

// watchCommand returns the container's command line as the runtime runs
// it: the image's entrypoint (or the container's command) and args.
func watchCommand(t *testing.T, ctr corev1.Container, img image) []string {
	t.Helper()
	cmd := slices.Clone(img.entrypoint)
	args := img.cmd
	if len(ctr.Command) > 0 {
		cmd, args = slices.Clone(ctr.Command), nil
	}
	if len(ctr.Args) > 0 {
		args = ctr.Args
	}
	return append(cmd, args...)
}

// containerPort returns the container's port that a probe's port names,
// by name or number.
func containerPort(ctr corev1.Container, p corev1.ContainerPort, ref string) bool {
	return ref == p.Name || ref == strconv.Itoa(int(p.ContainerPort))
}

// The container runs arpcheck watch with repairs, JSON logs and the
// metrics listener; the flags are ones watch has (asked of the binary the
// Containerfile builds); the port is declared as the node's; the probes
// ask /healthz on it.
func TestDaemonSetCommand(t *testing.T) {
	f := readFleet(t)
	bin := builtImage(t)
	argv := watchCommand(t, f.ctr, bin.img)
	if argv[0] != bin.img.entrypoint[0] || len(argv) < 2 || argv[1] != "watch" {
		t.Fatalf("the container runs %q; want %s watch ...", argv, bin.img.entrypoint[0])
	}
	flags := helpFlags(t, bin.path, "watch")
	args := argv[2:]
	for i := 0; i < len(args); i++ {
		name, _, inline := strings.Cut(args[i], "=")
		if !strings.HasPrefix(name, "-") {
			continue // a peer
		}
		takesValue, ok := flags[name]
		switch {
		case !ok:
			t.Errorf("arpcheck watch has no flag %s", name)
		case takesValue && !inline:
			if i+1 == len(args) {
				t.Errorf("%s wants a value", name)
			}
			i++
		}
	}
	for flag, want := range map[string]string{"--repair": "", "--log-format": "json"} {
		if !slices.Contains(args, flag) || (want != "" && flagValue(args, flag) != want) {
			t.Errorf("args %q: want %s %s", args, flag, want)
		}
	}
	port := listenPort(t, args)

	var metrics *corev1.ContainerPort
	for i, p := range f.ctr.Ports {
		if int(p.ContainerPort) == port {
			metrics = &f.ctr.Ports[i]
		}
	}
	if metrics == nil {
		t.Fatalf("no container port %d (--listen)", port)
	}
	// With hostNetwork the API server requires hostPort = containerPort.
	if metrics.HostPort != metrics.ContainerPort || metrics.Protocol != corev1.ProtocolTCP {
		t.Errorf("port %+v: want hostPort %d, TCP", *metrics, port)
	}
	if errs := validation.IsValidPortName(metrics.Name); len(errs) > 0 {
		t.Errorf("port name %q: %v", metrics.Name, errs)
	}
	probes := map[string]*corev1.Probe{"liveness": f.ctr.LivenessProbe, "readiness": f.ctr.ReadinessProbe,
		"startup": f.ctr.StartupProbe}
	for _, kind := range slices.Sorted(maps.Keys(probes)) {
		p := probes[kind]
		switch {
		case p == nil && kind == "startup":
		case p == nil || p.HTTPGet == nil:
			t.Errorf("no %s probe by HTTP GET", kind)
		case p.HTTPGet.Path != "/healthz" || !containerPort(f.ctr, *metrics, p.HTTPGet.Port.String()):
			t.Errorf("%s probe asks %s on port %s; want /healthz on %d", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), port)
		}
	}
}

// listenPort returns the port of --listen in args.
func listenPort(t *testing.T, args []string) int {
	t.Helper()
	listen := flagValue(args, "--listen")
	_, p, ok := strings.Cut(listen, ":")
	port, err := strconv.Atoi(p)
	if !ok || err != nil || strings.Count(listen, ":") != 1 {
		t.Fatalf("--listen %q: want [HOST]:PORT", listen)
	}
	return port
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

// helpFlags returns the flags an arpcheck command's --help lists, each
// with whether it takes a value.
func helpFlags(t *testing.T, bin, command string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, command, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("arpcheck %s --help: %v\n%s", command, err, out)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		s := strings.TrimSpace(line)
		if !strings.HasPrefix(s, "-") {
			continue
		}
		// "--listen ADDRESS   serve /metrics ... [$ARPCHECK_LISTEN]"
		spec, _, _ := strings.Cut(s, "  ")
		for _, name := range strings.Split(spec, ", ") {
			name, arg, _ := strings.Cut(name, " ")
			flags[name] = arg != ""
		}
	}
	if !flags["--listen"] || len(flags) < 5 {
		t.Fatalf("arpcheck %s --help: the parser here does not understand it:\n%s", command, out)
	}
	return flags
}

// The PodMonitor scrapes the DaemonSet's pods on their metrics port and
// names the job as the alerts expect.
func TestPodMonitor(t *testing.T) {
	f := readFleet(t)
	sel, err := metav1.LabelSelectorAsSelector(&f.pm.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(f.ds.Spec.Template.Labels)) {
		t.Errorf("PodMonitor selector %v does not select the pods %v (%v)", f.pm.Spec.Selector, f.ds.Spec.Template.Labels, err)
	}
	if len(f.pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("%d endpoints; want 1", len(f.pm.Spec.PodMetricsEndpoints))
	}
	ep := f.pm.Spec.PodMetricsEndpoints[0]
	if ep.Port == nil || !slices.ContainsFunc(f.ctr.Ports, func(p corev1.ContainerPort) bool { return p.Name == *ep.Port }) {
		t.Errorf("PodMonitor scrapes port %v; the container has no port of that name", ep.Port)
	}
	if ep.Path != "" && ep.Path != "/metrics" {
		t.Errorf("PodMonitor scrapes %s; watch serves /metrics", ep.Path)
	}
	job, ok := f.ds.Spec.Template.Labels[f.pm.Spec.JobLabel]
	if !ok {
		t.Fatalf("jobLabel %q is not a label of the pods", f.pm.Spec.JobLabel)
	}
	for _, a := range alertRules(t) {
		for _, sel := range a.selectors {
			for _, m := range sel.LabelMatchers {
				if m.Name == "job" && !m.Matches(job) {
					t.Errorf("alert %s selects %s; the PodMonitor names the job %q", a.name, m, job)
				}
			}
		}
	}
}
