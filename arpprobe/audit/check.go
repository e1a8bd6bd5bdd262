package audit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The kernel's defaults that the thresholds are (see the package
// documentation for why each).
const (
	defaultBaseReachableMS = 30000 // base_reachable_time_ms
	defaultDelayFirstProbe = 5     // delay_first_probe_time, seconds
	defaultLocktime        = 100   // locktime, in USER_HZ (1/100 s): 1 s
	defaultGCStaleTime     = 60    // gc_stale_time, seconds
	defaultRetransMS       = 1000  // retrans_time_ms
	defaultUcastSolicit    = 3     // ucast_solicit
)

// listed is how many addresses a finding names before "and N more".
const listed = 5

// Check returns the findings about h, host-wide ones last. It is pure:
// it looks only at h.
func Check(h *Host) []Finding {
	var out []Finding
	for i := range h.Interfaces {
		out = append(out, checkInterface(&h.Interfaces[i])...)
	}
	out = append(out, checkTable(h)...)
	if h.HaveRuns {
		out = append(out, checkRuns(h.Runs))
	}
	return out
}

// checkInterface returns the findings about one interface's settings and
// entries.
func checkInterface(ifc *Interface) []Finding {
	var out []Finding
	add := func(sev Severity, setting, value, meaning, fix string) {
		out = append(out, Finding{Severity: sev, Interface: ifc.Name, Setting: setting, Value: value,
			Meaning: meaning, Fix: fix})
	}
	neigh := func(name string) string { return sysctlName("neigh", ifc.Name, name) }
	heal := healTimes(ifc.Neigh)

	if v, ok := ifc.Neigh["base_reachable_time_ms"]; ok && v > defaultBaseReachableMS {
		add(Warning, neigh("base_reachable_time_ms"), strconv.Itoa(v),
			fmt.Sprintf("a wrong REACHABLE entry is trusted for %s before the kernel asks again: it heals in %s (23–53 s measured at the default 30000)",
				span(v/2, v*3/2), heal.reachable),
			fmt.Sprintf("sysctl -w %s=%d (the default)", neigh("base_reachable_time_ms"), defaultBaseReachableMS))
	}
	if v, ok := ifc.Neigh["delay_first_probe_time"]; ok && v > defaultDelayFirstProbe {
		add(Warning, neigh("delay_first_probe_time"), strconv.Itoa(v),
			fmt.Sprintf("a wrong STALE entry in use is sent to for %d s before the first probe: it heals in about %s (8 s measured at the default 5)",
				v, heal.stale),
			fmt.Sprintf("sysctl -w %s=%d (the default)", neigh("delay_first_probe_time"), defaultDelayFirstProbe))
	}
	if v, ok := ifc.Neigh["locktime"]; ok && v > defaultLocktime {
		add(Warning, neigh("locktime"), strconv.Itoa(v),
			fmt.Sprintf("the new owner's reply is ignored for %s after each update of the entry (1 s by default)", centis(v)),
			fmt.Sprintf("sysctl -w %s=%d (the default, 1 s)", neigh("locktime"), defaultLocktime))
	}
	if v, ok := ifc.Neigh["gc_stale_time"]; ok && v > defaultGCStaleTime {
		add(Info, neigh("gc_stale_time"), strconv.Itoa(v),
			fmt.Sprintf("an idle wrong entry is collected only after %d s unused (60 s by default), and only while the table holds more than gc_thresh1", v),
			"")
	}

	if c, ok := ifc.Conf["drop_gratuitous_arp"]; ok && c.Value != 0 {
		add(Warning, sysctlName("conf", c.From, "drop_gratuitous_arp"), strconv.Itoa(c.Value),
			fmt.Sprintf("the new owner's gratuitous ARP, which would correct the entry at once, is dropped: it heals only by the kernel's probes (about %s from STALE, %s from REACHABLE)",
				heal.stale, heal.reachable),
			fmt.Sprintf("sysctl -w %s=0, unless gratuitous ARP is dropped on purpose (untrusted LAN)", sysctlName("conf", c.From, "drop_gratuitous_arp")))
	}
	if c, ok := ifc.Conf["proxy_arp"]; ok && c.Value != 0 {
		delay := "0–0.8 s (proxy_delay 80)"
		if d, ok := ifc.Neigh["proxy_delay"]; ok {
			delay = fmt.Sprintf("0–%s (proxy_delay %d)", centis(d), d)
		}
		add(Warning, sysctlName("conf", c.From, "proxy_arp"), strconv.Itoa(c.Value),
			"this host answers ARP for addresses it routes through another interface with its own MAC, after a random "+delay+
				": peers see a second answer, which arpcheck reports as a conflict and will not repair",
			fmt.Sprintf("sysctl -w %s=0, unless this host is meant to answer for others", sysctlName("conf", c.From, "proxy_arp")))
	}
	if c, ok := ifc.Conf["arp_accept"]; ok && c.Value != 0 {
		add(Info, sysctlName("conf", c.From, "arp_accept"), strconv.Itoa(c.Value),
			"unsolicited ARP creates new entries; it does not change healing: any ARP from the new owner updates an existing entry whatever this is",
			"")
	}
	if c, ok := ifc.Conf["arp_notify"]; ok && c.Value == 0 {
		add(Info, sysctlName("conf", c.From, "arp_notify"), "0",
			"when this host takes over an address (device up, MAC changed) it does not announce it: peers keep the old MAC until their kernel asks",
			fmt.Sprintf("sysctl -w %s=1 makes this host announce itself, so that peers learn its new MAC at once", sysctlName("conf", ifc.Name, "arp_notify")))
	}

	if n := len(ifc.Permanent); n > 0 {
		add(Warning, "PERMANENT entries", entries(ifc.Permanent),
			"the kernel never revalidates a PERMANENT entry: if its address is recycled, traffic goes to the old MAC until someone changes it (never heals)",
			fmt.Sprintf("make them ordinary entries, or check them with arpcheck (repair --include-permanent); ip neigh del ADDRESS dev %s removes one", ifc.Name))
	}
	if n := len(ifc.ExternLearned); n > 0 {
		add(Info, "extern_learn entries", entries(ifc.ExternLearned),
			"a controller (an EVPN daemon, a CNI plugin) owns these entries: a wrong one is the controller's to fix, and arpcheck repair keeps the flag",
			"")
	}
	return out
}

// checkTable compares the table's size with the host-wide garbage
// collection thresholds.
func checkTable(h *Host) []Finding {
	counted := 0
	exempt := 0
	for i := range h.Interfaces {
		counted += h.Interfaces[i].Counted
		exempt += len(h.Interfaces[i].Permanent) + len(h.Interfaces[i].ExternLearned)
	}
	what := fmt.Sprintf("%d entries here", counted)
	if h.HaveHostEntries {
		// The host-wide count includes every namespace's entries, and
		// PERMANENT ones; take out this namespace's exempt ones.
		counted = max(counted, h.HostEntries-exempt)
		what = fmt.Sprintf("%d entries counted host-wide (%d in all, %d of them exempt here)", counted, h.HostEntries, exempt)
	}
	if !h.HaveGCThresh {
		return []Finding{{Severity: Info, Setting: "net.ipv4.neigh.default.gc_thresh1-3", Value: "not visible (" + what + ")",
			Meaning: "the garbage-collection thresholds are host-wide and count every namespace's entries; they exist only in the initial network namespace",
			Fix:     "run arpcheck doctor in the initial namespace to compare the table with them"}}
	}
	t := h.GCThresh
	value := fmt.Sprintf("%d/%d/%d, %s", t[0], t[1], t[2], what)
	switch {
	case counted >= t[2]:
		return []Finding{{Severity: Critical, Setting: "net.ipv4.neigh.default.gc_thresh3", Value: value,
			Meaning: "the table is full: new entries fail (neighbour table overflow) and the hosts they are for are unreachable",
			Fix:     "raise gc_thresh2 and gc_thresh3 above the table's size, or find what fills the table"}}
	case counted > t[1]:
		return []Finding{{Severity: Warning, Setting: "net.ipv4.neigh.default.gc_thresh2", Value: value,
			Meaning: "above gc_thresh2 the kernel collects garbage forcibly as entries are added, evicting other entries (the host's own, seen with ~1000 in a test namespace), whose hosts are then asked again",
			Fix:     "raise gc_thresh2 and gc_thresh3 above the table's size"}}
	case counted > t[0]:
		return []Finding{{Severity: Info, Setting: "net.ipv4.neigh.default.gc_thresh1", Value: value,
			Meaning: "above gc_thresh1 entries unused for gc_stale_time are collected, so an idle wrong entry goes and the next packet asks by broadcast",
			Fix:     ""}}
	}
	return nil
}

// checkRuns says whether anything checks the cache between the kernel's
// own probes.
func checkRuns(r Runs) Finding {
	if !r.Any() {
		return Finding{Severity: Warning, Setting: "arpcheck", Value: "no watch process, systemd unit or cron job",
			Meaning: "nothing checks the cache: a wrong entry lasts until the kernel heals it (about 8 s from STALE, 23–53 s from REACHABLE, never when PERMANENT)",
			Fix: "enable examples/deploy/systemd/arpcheck-watch.service (systemctl enable --now arpcheck-watch) " +
				"or install examples/deploy/cron/arpcheck as /etc/cron.d/arpcheck"}
	}
	var how []string
	for _, p := range r.WatchPIDs {
		how = append(how, fmt.Sprintf("watch running (pid %d)", p))
	}
	for _, u := range r.Units {
		how = append(how, "unit "+u+" enabled")
	}
	for _, c := range r.Cron {
		how = append(how, "cron "+c)
	}
	return Finding{Severity: Info, Setting: "arpcheck", Value: strings.Join(how, "; "),
		Meaning: "arpcheck checks the cache, so a wrong entry is found and corrected without waiting for the kernel"}
}

// heal is how long a wrong entry in use takes to heal by the kernel's
// own probing, from STALE and from REACHABLE.
type heal struct{ stale, reachable string }

// healTimes computes them as measured: from STALE, the first probe after
// delay_first_probe_time, then ucast_solicit unicast probes retrans_time
// apart to the old MAC, then a broadcast the owner answers; from
// REACHABLE, 0.5–1.5 × base_reachable_time more.
func healTimes(neigh map[string]int) heal {
	get := func(name string, def int) int {
		if v, ok := neigh[name]; ok {
			return v
		}
		return def
	}
	staleMS := get("delay_first_probe_time", defaultDelayFirstProbe)*1000 +
		get("ucast_solicit", defaultUcastSolicit)*get("retrans_time_ms", defaultRetransMS)
	base := get("base_reachable_time_ms", defaultBaseReachableMS)
	return heal{stale: seconds(staleMS), reachable: span(base/2+staleMS, base*3/2+staleMS)}
}

// sysctlName is a sysctl's name as sysctl(8) writes it:
// net.ipv4.<dir>.<iface>.<name>, with dots in the interface's name
// written as slashes.
func sysctlName(dir, iface, name string) string {
	return "net.ipv4." + dir + "." + strings.ReplaceAll(iface, ".", "/") + "." + name
}

// seconds formats milliseconds as seconds, such as "8 s" or "1.5 s".
func seconds(ms int) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + " s"
}

// span formats a range of milliseconds, such as "15–45 s".
func span(loMS, hiMS int) string {
	return strings.TrimSuffix(seconds(loMS), " s") + "–" + seconds(hiMS)
}

// centis formats a time in hundredths of a second (USER_HZ), as
// locktime and proxy_delay are given.
func centis(v int) string { return seconds(v * 10) }

// entries names up to listed addresses and how many more there are.
func entries(addrs []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d: ", len(addrs))
	for i, a := range addrs {
		if i == listed {
			fmt.Fprintf(&b, " and %d more", len(addrs)-listed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}
