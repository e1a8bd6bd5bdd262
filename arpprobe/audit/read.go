package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// Sysctls reads sysctls. A path is given below /proc/sys, such as
// "net/ipv4/neigh/eth0/locktime"; the value comes back without its
// newline. A sysctl that does not exist is an error for which
// errors.Is(err, fs.ErrNotExist) holds. *internal/netns.NS satisfies it
// for a namespace; ProcSys for the caller's.
type Sysctls interface {
	ReadSysctl(path string) (string, error)
}

// ProcSys reads sysctls from /proc/sys, in the network namespace of the
// thread that reads (the process's, unless the calling goroutine locked
// its thread into another).
type ProcSys struct{}

// ReadSysctl reads /proc/sys/path. It needs no privilege.
func (ProcSys) ReadSysctl(p string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", filepath.Clean("/"+p)))
	return strings.TrimSuffix(string(b), "\n"), err
}

// Table is the neighbour table and the interfaces it refers to;
// *arpprobe.Kernel satisfies it.
type Table interface {
	Links(ctx context.Context) ([]arpprobe.Link, error)
	Neighbors(ctx context.Context) ([]arpprobe.Neighbor, error)
}

// Source is where Read reads.
type Source struct {
	Sysctls Sysctls
	Table   Table
	// Files is the host's file system from its root, such as
	// os.DirFS("/"): Read looks in it for the table's host-wide size
	// (proc/net/stat/arp_cache) and for how arpcheck runs (see ReadRuns).
	// Nil: neither is looked for.
	Files fs.FS
}

// The sysctls Read reads per interface.
var (
	neighSysctls = []string{"base_reachable_time_ms", "delay_first_probe_time", "gc_stale_time", "locktime",
		"proxy_delay", "retrans_time_ms", "ucast_solicit"}
	// confSysctls says, for each conf sysctl Read reads, whether the
	// kernel takes the larger of conf/all and conf/<if> (IN_DEV_MAXCONF)
	// rather than either being on (IN_DEV_ORCONF).
	confSysctls = []struct {
		name string
		max  bool
	}{{"arp_accept", true}, {"arp_notify", true}, {"drop_gratuitous_arp", false}, {"proxy_arp", false}}
)

// Read gathers what Check looks at: the sysctls and neighbour entries of
// every interface that uses ARP, the host-wide thresholds and table size
// where they can be seen, and how arpcheck runs. It reads only: a few
// dozen small files and two netlink dumps; it needs no privilege, though
// without root it may not see every process or crontab.
func Read(ctx context.Context, src Source) (*Host, error) {
	links, err := src.Table.Links(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	neighbors, err := src.Table.Neighbors(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	h := &Host{}
	for _, l := range links {
		if l.Loopback || l.NoARP {
			continue
		}
		ifc, err := readInterface(src.Sysctls, l.Name)
		if err != nil {
			return nil, err
		}
		for _, n := range neighbors {
			if n.Ifindex != l.Index {
				continue
			}
			switch {
			case n.State&arpprobe.StatePermanent != 0:
				ifc.Permanent = append(ifc.Permanent, n.IP)
			case n.Flags&arpprobe.FlagExternLearned != 0:
				ifc.ExternLearned = append(ifc.ExternLearned, n.IP)
			default:
				ifc.Counted++
			}
		}
		h.Interfaces = append(h.Interfaces, ifc)
	}
	for i := range h.GCThresh {
		v, ok, err := readInt(src.Sysctls, fmt.Sprintf("net/ipv4/neigh/default/gc_thresh%d", i+1))
		if err != nil {
			return nil, err
		}
		h.GCThresh[i] = v
		h.HaveGCThresh = ok
	}
	if src.Files != nil {
		if h.HostEntries, h.HaveHostEntries, err = readHostEntries(src.Files); err != nil {
			return nil, err
		}
		if h.Runs, err = ReadRuns(src.Files); err != nil {
			return nil, err
		}
		h.HaveRuns = true
	}
	return h, nil
}

// readInterface reads one interface's sysctls. A sysctl this kernel
// lacks, or an interface gone since it was listed, leaves values out.
func readInterface(s Sysctls, name string) (Interface, error) {
	ifc := Interface{Name: name, Neigh: make(map[string]int), Conf: make(map[string]ConfValue)}
	for _, n := range neighSysctls {
		v, ok, err := readInt(s, "net/ipv4/neigh/"+name+"/"+n)
		if err != nil {
			return ifc, err
		}
		if ok {
			ifc.Neigh[n] = v
		}
	}
	for _, c := range confSysctls {
		all, okAll, err := readInt(s, "net/ipv4/conf/all/"+c.name)
		if err != nil {
			return ifc, err
		}
		dev, okDev, err := readInt(s, "net/ipv4/conf/"+name+"/"+c.name)
		if err != nil {
			return ifc, err
		}
		if okAll && okDev {
			ifc.Conf[c.name] = effective(c.max, name, all, dev)
		}
	}
	return ifc, nil
}

// effective is the value the kernel uses for a conf setting of iface,
// and where it comes from: the larger of conf/all's and the interface's
// (larger), or, for an on/off setting, on when either is on.
func effective(larger bool, iface string, all, dev int) ConfValue {
	if larger {
		if all > dev {
			return ConfValue{Value: all, From: "all"}
		}
		return ConfValue{Value: dev, From: iface}
	}
	if dev != 0 {
		return ConfValue{Value: dev, From: iface}
	}
	if all != 0 {
		return ConfValue{Value: all, From: "all"}
	}
	return ConfValue{Value: 0, From: iface}
}

// readInt reads an integer sysctl; ok is false when it does not exist.
func readInt(s Sysctls, p string) (v int, ok bool, err error) {
	text, err := s.ReadSysctl(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("audit: read sysctl %s: %w", p, err)
	}
	v, err = strconv.Atoi(strings.TrimSpace(text))
	if err != nil {
		return 0, false, fmt.Errorf("audit: sysctl %s: %q is not a number", p, text)
	}
	return v, true, nil
}

// readHostEntries reads the number of neighbour entries of every
// namespace from proc/net/stat/arp_cache, which only the initial
// namespace has: a header line, then a line per CPU whose first column
// is the table's size in hex (the same on every line).
func readHostEntries(files fs.FS) (int, bool, error) {
	const p = "proc/net/stat/arp_cache"
	b, err := fs.ReadFile(files, p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("audit: read /%s: %w", p, err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "entries") {
		return 0, false, fmt.Errorf("audit: /%s: not the layout expected (entries ...)", p)
	}
	f := strings.Fields(lines[1])
	if len(f) == 0 {
		return 0, false, fmt.Errorf("audit: /%s: no entries column", p)
	}
	n, err := strconv.ParseUint(f[0], 16, 31)
	if err != nil {
		return 0, false, fmt.Errorf("audit: /%s: entries %q: %w", p, f[0], err)
	}
	return int(n), true, nil
}
