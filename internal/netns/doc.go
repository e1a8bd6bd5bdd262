// Package netns builds throw-away network namespaces and the links between
// them, for tests, benchmarks and runnable examples of arpcheck.
//
// Nothing here touches the namespace the process started in: every link
// is created directly inside a namespace this package made (a veth's peer
// is placed in the other namespace as it is created), and every sysctl
// written is a net.* sysctl of such a namespace.
//
// # Namespaces and threads
//
// A network namespace belongs to an OS thread, not to a process. New and
// Do therefore run on a fresh goroutine that locks its OS thread, switch
// that thread into the namespace, and switch it back afterwards. If the
// switch back fails the thread stays locked, so the Go runtime ends it
// with the goroutine instead of reusing a thread in the wrong namespace.
// Code run by Do must not start goroutines that expect to be inside the
// namespace: they run on other threads.
//
// A socket's namespace is fixed when the socket is created. Create it
// inside Do; it can then be used from any goroutine. Handle returns a
// netlink handle made this way.
//
// # Lifetime
//
// A namespace is unnamed (it never shows in `ip netns list`) and lives
// while something refers to it: the file descriptor an NS holds, a
// thread inside it, or a socket created in it. When the last reference
// goes, the kernel destroys the namespace and every link in it (a veth
// pair goes as soon as either end goes). Destruction is asynchronous and
// usually takes well under a second. Close the NS and every socket made
// in it, and the namespace disappears.
//
// # Privileges
//
// Creating a namespace and configuring it needs CAP_SYS_ADMIN and
// CAP_NET_ADMIN; in practice, root. Tests call Require or NewT, which skip
// the test without root unless the environment variable CI is "true", in
// which case they fail it: a skipped namespace test in CI hides a failure.
//
// # Host-wide limits
//
// The kernel's ARP garbage-collection thresholds (gc_thresh1/2/3) count
// the entries of all namespaces together. A test that seeds more than a
// few hundred ordinary (STALE, REACHABLE) entries can make the kernel
// evict the host's own entries; seed PERMANENT entries or entries with
// NTF_EXT_LEARNED instead, which do not count.
package netns
