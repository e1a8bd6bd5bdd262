// Package watch keeps a Linux host's ARP cache right as it changes: a
// Watcher checks an entry as soon as something gives reason to doubt it,
// and repairs it with the same policy and safeguards as any
// [arpprobe.Checker.Check], where a check from cron looks once a minute.
//
// The new owner of a recycled address shows itself in one of four ways,
// and a Watcher listens for each at almost no cost when all is well:
//
//   - the kernel's neighbour events (NeighborMonitor, an rtnetlink
//     subscription): an entry changes MAC, appears, or is probed;
//   - an entry's first use while STALE, which raises no event: the
//     neigh tracepoints show it at once (NeighborTracer, an eBPF program,
//     with CAP_BPF and CAP_PERFMON), or else a read of the table every
//     Config.Poll (cheap through a NeighborScanner such as
//     [arpprobe.Kernel]);
//   - ARP on the wire: a request or announcement claiming a watched
//     address with another MAC than the cached one;
//   - an IPv4 frame from a watched address of the interface's own subnet
//     with another source MAC: the new owner speaking first. A socket
//     filter passes only such frames (eBPF with CAP_BPF, TCP SYNs
//     through a classic filter without).
//
// Every watched entry is also checked at each sweep (Config.Interval),
// which finds what none of these shows: a PERMANENT entry whose address
// moved to a silent host.
//
// All of a Watcher's checks share one prober, its rate limits included,
// so that no storm of events or spoofed frames makes it send more than
// one check may. Stats counts what it saw and did (package watchmetrics
// serves them as Prometheus metrics), and Health says whether it sweeps
// as it should.
package watch
