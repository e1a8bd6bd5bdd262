// Package audit checks a Linux host's neighbour (ARP) settings against
// what decides how long a recycled IPv4 address hurts: how long the
// kernel keeps sending to the old owner's MAC, and what lets it learn the
// new owner's sooner. It reads only; it sends no frame and needs no
// privilege.
//
// Read gathers the values (sysctls under /proc/sys/net/ipv4/neigh and
// /proc/sys/net/ipv4/conf, the neighbour table, the host-wide table size,
// and whether arpcheck watch or a periodic arpcheck runs); Check, a pure
// function, turns them into Findings. Tests call Check on values they
// make up, and Read on namespaces they make.
//
// # Network namespaces
//
// The neighbour sysctls and the table belong to a network namespace: Read
// sees those of the namespace its Sysctls and Table were opened in. The
// garbage-collection thresholds gc_thresh1–3 and the size of the table
// they are compared with are host-wide: they exist only in the initial
// namespace and count the entries of every namespace together. Elsewhere
// Read cannot see them, and Check says so.
//
// # Thresholds
//
// A finding needs attention (Warning or Critical) only where a setting
// differs from the kernel's default in the direction that makes a wrong
// entry last longer or keeps the new owner's word out, or where the
// table holds entries that never heal. Each threshold, with the reason
// for it (figures measured on Linux 6.18: a wrong STALE entry in use
// heals in about 8 s, a wrong REACHABLE one in 23–53 s, a wrong PERMANENT
// one never):
//
//	base_reachable_time_ms > 30000   the default; REACHABLE lasts 0.5–1.5× this before the kernel asks again
//	delay_first_probe_time > 5       the default; a used STALE entry waits this long before the first probe
//	locktime > 100 (1 s)             the default; the owner's reply is ignored this long after each update
//	drop_gratuitous_arp = 1          the new owner's announcement, which heals at once, is dropped
//	proxy_arp = 1                    this host answers for others with its own MAC: a second answer
//	PERMANENT entries                never revalidated: a wrong one never heals
//	table ≥ gc_thresh3               new entries fail (Critical); > gc_thresh2: forced collection evicts entries in use
//	no watch, timer or cron          nothing checks the cache between the kernel's own probes
//
// Informational findings (Info) need no change: gc_stale_time above its
// default of 60 s (an idle wrong entry is collected later, and only while
// the table holds more than gc_thresh1), arp_accept (it decides only
// whether unsolicited ARP creates entries; any ARP from the owner updates
// an existing one), arp_notify = 0 (this host does not announce itself
// when a device comes up or changes MAC), extern_learn entries (a
// controller owns them: fix a wrong one there), and the host-wide
// thresholds when they cannot be seen.
package audit
