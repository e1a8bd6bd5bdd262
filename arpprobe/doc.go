// Package arpprobe finds and repairs wrong entries in a Linux host's ARP
// cache.
//
// Addresses get recycled: an instance dies, a new one takes its IPv4
// address with a new MAC, and peers keep sending to the dead MAC because
// their kernel still caches it. arpprobe checks each cached entry against
// the wire and corrects only the wrong ones.
//
// # The model: snapshot, probe, classify, repair
//
// A check (Check, Checker.Check) has four steps:
//
//  1. Snapshot. One netlink dump of the neighbour table (and of links and
//     routes, to pick each peer's interface and source address) is taken
//     before any frame is sent. The order matters: the kernel's ARP code
//     processes every reply the owner sends, ours included, and overwrites
//     a wrong STALE, DELAY or REACHABLE entry with the owner's MAC. Read
//     after probing, the table would already look healthy and the problem
//     would vanish from the report, exactly as it vanishes when someone
//     runs arping by hand.
//
//  2. Probe. A Prober sends a unicast ARP request to the cached MAC (does
//     the cached host still own the address?) and, by BroadcastPolicy, a
//     broadcast request (who owns it now?). One raw socket and one reader
//     goroutine per interface serve every peer at once: replies are
//     matched to probes by sender address, every silent peer shares the
//     same timeout windows, and frames are paced by rate limits. Under
//     BroadcastAuto the broadcast follows Timeout/5 of unicast silence, and
//     a probe listens BroadcastWait (0.9 s) after its first broadcast, so
//     that a proxy ARP answer, which Linux delays up to 0.8 s, is heard.
//
//  3. Classify. Classify turns the snapshot entry and the distinct MACs
//     that answered into a Verdict: ok, stale, dead, conflict or uncached
//     (offlink and unknown are decided around probing).
//
//  4. Repair. PlanRepairs turns verdicts into a plan (data); ApplyRepairs
//     re-reads the table just before writing and writes only the owner's
//     MAC verified in this run, with ip-neigh-replace semantics. An entry
//     the kernel has already healed is reported as ActionHealed and not
//     written. Conflicts, PERMANENT entries (unless allowed) and entries
//     that changed since the snapshot are refused; entries are never
//     added for peers that had none.
//
// # Which entries a peer means
//
// One rule, in both modes: a peer means every entry the kernel holds for
// its address on an interface that uses ARP (not loopback, not NOARP),
// each checked on its own interface as one Peer. Check with no peers
// checks every such entry; with peers named, it checks the entries the
// whole table would give for those addresses, and a named peer with no
// entry on the interface its route picks, in any routing table (a policy
// rule's or a VRF's too), or is offlink if no route reaches it directly.
// So a host with two interfaces on one subnet gets one Peer per interface
// that caches the address; a leftover entry for an address now routed
// through a gateway is checked where it is, named or not. Two kinds of
// entry are treated apart:
//   - an entry for one of the host's own addresses is offlink ("an
//     address of this host"): the kernel never sends to it through the
//     entry, and a request asking for it from itself proves nothing;
//   - an entry on a port of a bridge or bond (Link.Master) with no IPv4
//     address of its own is probed through the master (Peer.Via), which
//     holds the address and receives what the port receives; it is still
//     reported and repaired on the port.
//
// # ARP storms
//
// Frames reach the prober through a socket filter that drops in the
// kernel whatever can never answer a request (malformed, tagged, from a
// broadcast, multicast or zero sender MAC) and a memory-mapped receive
// ring, read a block of frames at a time without a system call. If the
// kernel still drops received frames while a peer's attempt is awaited,
// its silence proves nothing: the peer is asked again, up to Attempts
// more times, and is unknown only if drops hid every attempt that could
// tell. A reply that arrived always counts. A silence is judged only once
// the reader has seen every frame that arrived before the window closed.
//
// # Other parts
//
// ParsePeers and PeerSet read peer lists (addresses and prefixes, one per
// line, as ip-neighbour(8) prints them) with errors that name the line.
// Ping asks one address repeatedly, arping-style, and reports every reply
// with its MAC and round-trip time. PcapWriter records every frame a
// Prober sends and receives.
//
// # Watching
//
// A check looks once. Package watch keeps looking: its Watcher checks an
// entry, with a Checker.Check and its safeguards, as soon as a kernel
// event, the entry's first use while STALE, an ARP frame on the wire or
// an IPv4 frame from the address with another MAC gives reason to doubt
// it, and every watched entry at each sweep. It is built on this
// package's exported API: Prober.Listen, Prober.Stats and
// Kernel.ScanNeighbors are there for it.
//
// # What the kernel does meanwhile
//
// A wrong non-permanent entry left alone recovers by itself in about 8 s
// from STALE and 23 to 53 s from REACHABLE, once traffic makes the kernel
// probe the cached MAC and give up; a wrong PERMANENT entry never
// recovers. The kernel ignores a reply within locktime (1 s) of the
// entry's last update. So a repair may find an entry already healed by
// the probe's own reply, or still wrong; both are reported.
//
// # Privileges and costs
//
// Probing opens AF_PACKET sockets and needs CAP_NET_RAW; repair writes
// through netlink and needs CAP_NET_ADMIN. A missing privilege gives a
// *CapabilityError naming the capability, for which errors.Is(err,
// os.ErrPermission) is true as well. A check of N peers sends about one frame per
// peer when the table is healthy, and lasts about the sending time plus
// Attempts × Timeout at worst, whatever N.
//
// # Network namespaces
//
// Sockets and netlink handles belong to the network namespace they are
// created in. Check opens both in the calling goroutine's namespace, and a
// Prober opens each interface's socket in the namespace of the goroutine
// that first probes on it (afterwards the socket works from anywhere). To
// check another namespace, run Check or Checker.Check from a goroutine
// locked to an OS thread that has entered it; NewKernel with a handle made
// for that namespace then reads its tables from anywhere.
//
// # Testing without privileges
//
// The parts meet through small interfaces: NeighborTable and Topology
// (the kernel's tables) and FrameConn (a raw socket). Tests supply fakes;
// the real ones are tested in network namespaces.
package arpprobe
