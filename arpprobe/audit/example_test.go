package audit_test

import (
	"fmt"

	"github.com/arpcheck/arpcheck/arpprobe/audit"
)

// Check needs no kernel: give it the values, as Read would gather them.
// A program auditing its own host would call audit.Read with
// audit.ProcSys{}, an arpprobe.Kernel and os.DirFS("/").
func ExampleCheck() {
	h := &audit.Host{
		Interfaces: []audit.Interface{{
			Name:  "eth0",
			Neigh: map[string]int{"base_reachable_time_ms": 30000, "delay_first_probe_time": 20},
			Conf:  map[string]audit.ConfValue{"arp_notify": {Value: 1, From: "eth0"}},
		}},
	}
	findings := audit.Check(h)
	for _, f := range findings {
		fmt.Printf("%s %s %s=%s\n  %s\n", f.Severity, f.Interface, f.Setting, f.Value, f.Fix)
	}
	fmt.Println("needs attention:", audit.NeedsAttention(findings))
	// Output:
	// warning eth0 net.ipv4.neigh.eth0.delay_first_probe_time=20
	//   sysctl -w net.ipv4.neigh.eth0.delay_first_probe_time=5 (the default)
	// info  net.ipv4.neigh.default.gc_thresh1-3=not visible (0 entries here)
	//   run arpcheck doctor in the initial namespace to compare the table with them
	// needs attention: true
}
