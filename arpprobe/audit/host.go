package audit

import "net/netip"

// Host is what Read gathers, and all that Check looks at.
type Host struct {
	// Interfaces are the interfaces that use ARP (not loopback, not
	// NOARP), in the order the kernel lists them.
	Interfaces []Interface
	// GCThresh holds gc_thresh1, 2 and 3, when HaveGCThresh: they exist
	// only in the initial network namespace.
	GCThresh     [3]int
	HaveGCThresh bool
	// HostEntries is the number of neighbour entries of every namespace
	// (the entries column of /proc/net/stat/arp_cache), when
	// HaveHostEntries: it too is seen only from the initial namespace.
	HostEntries     int
	HaveHostEntries bool
	// Runs is how arpcheck is set up to run on the host, when HaveRuns
	// (Read was given the host's files to look in).
	Runs     Runs
	HaveRuns bool
}

// Interface is the settings and entries of one interface.
type Interface struct {
	Name string
	// Neigh holds the interface's sysctls in net/ipv4/neigh/<name>/ by
	// name ("base_reachable_time_ms", "locktime" ...), as the kernel
	// prints them; a sysctl this kernel lacks is absent.
	Neigh map[string]int
	// Conf holds the values of net/ipv4/conf that the kernel uses for the
	// interface, combined from conf/all and conf/<name> as the kernel
	// does (the larger, or either, by setting); absent when unreadable.
	Conf map[string]ConfValue
	// Permanent and ExternLearned are the addresses of the interface's
	// PERMANENT entries and of its entries with the extern_learn flag.
	Permanent     []netip.Addr
	ExternLearned []netip.Addr
	// Counted is the number of the interface's entries that count
	// towards gc_thresh (neither PERMANENT nor extern_learn).
	Counted int
}

// ConfValue is a net.ipv4.conf setting in effect on an interface, and
// where it comes from: "all" when conf/all decides it, else the
// interface's name.
type ConfValue struct {
	Value int
	From  string
}

// Runs is how arpcheck runs on the host, as far as can be seen from its
// files and processes.
type Runs struct {
	// WatchPIDs are the processes running arpcheck watch.
	WatchPIDs []int
	// Units are the enabled systemd units that run arpcheck
	// (arpcheck-watch.service, arpcheck.timer), as "unit (path)".
	Units []string
	// Cron are the crontab files with an active line running arpcheck
	// verify or repair.
	Cron []string
}

// Any reports whether arpcheck runs by any of these means.
func (r Runs) Any() bool { return len(r.WatchPIDs)+len(r.Units)+len(r.Cron) > 0 }
