package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"

	"github.com/arpcheck/arpcheck/examples/labs/benchlab/lab"
)

// A tool is one row of the table: a command line run inside the prober's
// namespace against the lab's peer list, and a check of its output
// against the lab's ground truth.
type tool struct {
	// name is what -tools selects.
	name string
	// label is what the table shows: the command, shortened.
	label string
	// bin is the program's name, looked up in PATH ("" for arpcheck,
	// which the program builds).
	bin string
	// argv returns the arguments after the program's name.
	argv func(e *env) []string
	// check compares the output with the truth and says whether it is
	// right, in a few words.
	check func(l *lab.Lab, stdout []byte, exitCode int) verdict
	// slow marks tools that take minutes at N=1000 (-slow-runs applies).
	slow bool
}

// env is what the tools need from the program.
type env struct {
	arpcheck  string // the arpcheck binary
	rusage    string // the helper that runs and measures a tool
	peersFile string // the lab's addresses, one a line
}

// verdict is a tool's result for one run.
type verdict struct {
	right bool
	note  string
}

// fastArpcheck is the arpcheck setting that is compared with arp-scan's
// fast setting (goal 1): one attempt of 100 ms and a broadcast to
// everyone, the broadcasts at arp-scan's --bandwidth=10M (10 Mbit/s over
// 84 bytes on the wire per request: 60-byte frame, FCS, preamble and gap;
// about 14,900 frames per second). The unicasts, which reach only the
// asked host, go at arpcheck's default --rate: arpcheck sends each peer a
// unicast and a broadcast, arp-scan a broadcast only, so at arp-scan's
// budget for both arpcheck would spend 134 ms sending what arp-scan sends
// in 67.
var fastArpcheck = []string{"--attempts", "1", "--timeout", "100ms", "--broadcast", "always",
	"--broadcast-rate", "14880"}

var tools = []tool{
	{
		name:  "arpcheck",
		label: "arpcheck verify (defaults)",
		argv: func(e *env) []string {
			return []string{"verify", "--peers", e.peersFile, "--format", "json"}
		},
		check: checkArpcheck,
	},
	{
		name:  "arpcheck-fast",
		label: "arpcheck verify " + strings.Join(fastArpcheck, " "),
		argv: func(e *env) []string {
			return append([]string{"verify", "--peers", e.peersFile, "--format", "json"}, fastArpcheck...)
		},
		check: checkArpcheck,
	},
	{
		name:  "arpcheck-never",
		label: "arpcheck verify --broadcast never",
		argv: func(e *env) []string {
			return []string{"verify", "--peers", e.peersFile, "--format", "json", "--broadcast", "never"}
		},
		check: checkArpcheckNever,
	},
	{
		name:  "arp-scan",
		label: "arp-scan --file (defaults)",
		bin:   "arp-scan",
		argv: func(e *env) []string {
			return []string{"-I", lab.ProberIface, "--quiet", "--plain", "--file=" + e.peersFile}
		},
		check: checkOwners(arpScanLine),
	},
	{
		name:  "arp-scan-fast",
		label: "arp-scan --file --bandwidth=10M --retry=1 --timeout=100",
		bin:   "arp-scan",
		argv: func(e *env) []string {
			return []string{"-I", lab.ProberIface, "--quiet", "--plain", "--file=" + e.peersFile,
				"--bandwidth=10M", "--retry=1", "--timeout=100"}
		},
		check: checkOwners(arpScanLine),
	},
	{
		name:  "arping-64",
		label: "arping -c 1 -w 1, 64 in parallel (xargs -P 64)",
		bin:   "xargs",
		argv: func(e *env) []string {
			return []string{"-a", e.peersFile, "-n", "1", "-P", "64", "arping", "-I", lab.ProberIface, "-c", "1", "-w", "1"}
		},
		check: checkOwners(arpingLine),
	},
	{
		name:  "arping-seq",
		label: "arping -c 1 -w 1, one after another",
		bin:   "xargs",
		argv: func(e *env) []string {
			return []string{"-a", e.peersFile, "-n", "1", "arping", "-I", lab.ProberIface, "-c", "1", "-w", "1"}
		},
		check: checkOwners(arpingLine),
		slow:  true,
	},
}

func toolByName(name string) (tool, bool) {
	i := slices.IndexFunc(tools, func(t tool) bool { return t.name == name })
	if i < 0 {
		return tool{}, false
	}
	return tools[i], true
}

// available reports whether the tool's program is installed; arping-*
// also need arping.
func (t tool) available() error {
	for _, bin := range []string{t.bin, map[bool]string{true: "arping"}[strings.HasPrefix(t.name, "arping")]} {
		if bin == "" {
			continue
		}
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install arp-scan iputils-arping)", bin)
		}
	}
	return nil
}

// checkArpcheck compares the verdicts of an arpcheck JSON report with the
// truth: healthy ok, stale stale, dead dead; and the exit status with
// what CLI.md says it must be for them.
func checkArpcheck(l *lab.Lab, out []byte, code int) verdict {
	return compareVerdicts(l, out, code, func(p lab.Peer) string { return p.Kind.Verdict() })
}

// checkArpcheckNever: with --broadcast never a stale peer's owner is never
// asked, so it is dead to arpcheck (its cached MAC is silent).
func checkArpcheckNever(l *lab.Lab, out []byte, code int) verdict {
	return compareVerdicts(l, out, code, func(p lab.Peer) string {
		if p.Kind == lab.Stale {
			return "dead"
		}
		return p.Kind.Verdict()
	})
}

func compareVerdicts(l *lab.Lab, out []byte, code int, want func(lab.Peer) string) verdict {
	var rep struct {
		Peers []struct {
			IP      string `json:"ip"`
			Verdict string `json:"verdict"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return verdict{note: fmt.Sprintf("no JSON report (exit %d): %v", code, err)}
	}
	got := make(map[netip.Addr]string, len(rep.Peers))
	for _, p := range rep.Peers {
		if a, err := netip.ParseAddr(p.IP); err == nil {
			got[a] = p.Verdict
		}
	}
	wrong, first := 0, ""
	worst := 0
	for _, p := range l.Peers {
		w := want(p)
		switch w {
		case "dead":
			worst = max(worst, 1)
		case "stale":
			worst = 2
		}
		if g := got[p.IP]; g != w {
			if wrong == 0 {
				first = fmt.Sprintf("%s: %q, want %q", p.IP, g, w)
			}
			wrong++
		}
	}
	switch {
	case wrong > 0:
		return verdict{note: fmt.Sprintf("%d of %d verdicts wrong (%s)", wrong, len(l.Peers), first)}
	case code != worst:
		return verdict{note: fmt.Sprintf("exit %d, want %d", code, worst)}
	}
	return verdict{right: true, note: "all verdicts right"}
}

var (
	// arp-scan --quiet --plain: "198.18.0.2\t02:bb:00:00:00:00" and maybe
	// "\t(DUP: 2)".
	arpScanLine = regexp.MustCompile(`^(\d+\.\d+\.\d+\.\d+)\s+([0-9a-fA-F:]{17})`)
	// iputils arping: "Unicast reply from 198.18.0.2 [02:BB:00:00:00:00]  0.5ms"
	arpingLine = regexp.MustCompile(`reply from (\d+\.\d+\.\d+\.\d+) \[([0-9a-fA-F:]{17})\]`)
)

// checkOwners checks a tool that reports who answered and compares
// nothing: right when every live peer's owner, and nobody else, answered.
// Telling a stale entry from a good one is left to the user.
func checkOwners(line *regexp.Regexp) func(*lab.Lab, []byte, int) verdict {
	return func(l *lab.Lab, out []byte, _ int) verdict {
		seen := make(map[netip.Addr][]string)
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			m := line.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			a, err1 := netip.ParseAddr(m[1])
			mac, err2 := net.ParseMAC(m[2])
			if err1 != nil || err2 != nil {
				continue
			}
			if !slices.Contains(seen[a], mac.String()) {
				seen[a] = append(seen[a], mac.String())
			}
		}
		live, found, wrong := 0, 0, 0
		for _, p := range l.Peers {
			macs := seen[p.IP]
			switch {
			case p.Owner == nil:
				if len(macs) > 0 {
					wrong++
				}
			case len(macs) == 1 && macs[0] == p.Owner.String():
				live++
				found++
			default:
				live++
				if len(macs) > 0 {
					wrong++
				}
			}
		}
		v := verdict{note: fmt.Sprintf("owners found %d/%d; compares nothing", found, live)}
		v.right = found == live && wrong == 0
		if wrong > 0 {
			v.note += fmt.Sprintf("; %d wrong", wrong)
		}
		return v
	}
}
