package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/arpcheck/arpcheck/arpprobe"
	"github.com/arpcheck/arpcheck/arpprobe/audit"
)

// doctorCommand is `arpcheck doctor`.
func (e *env) doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "audit the host's neighbour settings that decide how long a recycled address hurts; reads only",
		Description: "Reads, per interface that uses ARP, the sysctls in net.ipv4.neigh.IF and\n" +
			"net.ipv4.conf.IF (base_reachable_time_ms, delay_first_probe_time, gc_stale_time,\n" +
			"locktime, proxy_delay; arp_accept, arp_notify, drop_gratuitous_arp, proxy_arp),\n" +
			"the PERMANENT and extern_learn entries, gc_thresh1-3 against the table's size\n" +
			"(host-wide: seen only from the initial network namespace), and whether arpcheck\n" +
			"watch runs or the systemd units or cron file of examples/deploy are installed.\n" +
			"Each finding says what it means when an address is recycled and what to change.\n" +
			"It sends no frame, writes nothing and needs no capability.\n\n" +
			"Exit 0 when nothing needs attention (information only), 1 when something does\n" +
			"(a warning or a critical finding), 3 when the settings could not be read.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagInterface, Aliases: []string{"i"}, EnvVars: envVars(flagInterface),
				Usage: "only this interface's findings (and the host-wide ones)"},
			&cli.StringFlag{Name: flagFormat, EnvVars: envVars(flagFormat), Value: formatText,
				Usage: "output format: text or json"},
		},
		Action:       e.doctorAction,
		OnUsageError: onUsageError,
	}
}

func (e *env) doctorAction(c *cli.Context) error {
	format := c.String(flagFormat)
	if !slices.Contains([]string{formatText, formatJSON}, format) {
		return usageError(c, "--format %q: want text or json", format)
	}
	if c.Args().Present() {
		return usageError(c, "doctor takes no arguments")
	}
	k, err := arpprobe.OpenKernel()
	if err != nil {
		return fail(err)
	}
	defer k.Close()
	h, err := audit.Read(c.Context, audit.Source{Sysctls: audit.ProcSys{}, Table: k, Files: os.DirFS("/")})
	if err != nil {
		return fail(err)
	}
	findings := audit.Check(h)
	if name := c.String(flagInterface); name != "" {
		// Filtered after Check: the table's size is all interfaces'.
		if !slices.ContainsFunc(h.Interfaces, func(ifc audit.Interface) bool { return ifc.Name == name }) {
			return fail(fmt.Errorf("interface %s: no such interface that uses ARP", name))
		}
		findings = slices.DeleteFunc(findings, func(f audit.Finding) bool { return f.Interface != "" && f.Interface != name })
	}
	write := writeDoctorText
	if format == formatJSON {
		write = writeDoctorJSON
	}
	if err := write(e.stdout, findings); err != nil {
		return fail(err)
	}
	if audit.NeedsAttention(findings) {
		return &exitError{status: exitWarning}
	}
	return nil
}

// writeDoctorText writes the findings, most urgent first, each as a line
// naming the setting and its value, then what it means and what to
// change, indented; then a line that sums them up.
func writeDoctorText(w io.Writer, findings []audit.Finding) error {
	var b strings.Builder
	counts := make(map[audit.Severity]int)
	for _, f := range sortedFindings(findings) {
		counts[f.Severity]++
		where := f.Interface
		if where == "" {
			where = "host"
		}
		fmt.Fprintf(&b, "%-8s %-8s %s = %s\n", strings.ToUpper(f.Severity.String()), where, f.Setting, f.Value)
		fmt.Fprintf(&b, "         %s\n", f.Meaning)
		switch {
		case f.Fix != "" && f.Severity == audit.Info:
			fmt.Fprintf(&b, "         option: %s\n", f.Fix)
		case f.Fix != "":
			fmt.Fprintf(&b, "         change: %s\n", f.Fix)
		}
	}
	attention := counts[audit.Warning] + counts[audit.Critical]
	if attention == 0 {
		fmt.Fprintf(&b, "doctor: nothing needs attention (%s)\n", count(counts[audit.Info], "note"))
	} else {
		var what []string
		if n := counts[audit.Critical]; n > 0 {
			what = append(what, fmt.Sprintf("%d critical", n))
		}
		if n := counts[audit.Warning]; n > 0 {
			what = append(what, count(n, "warning"))
		}
		fmt.Fprintf(&b, "doctor: %s %s attention, %s\n", strings.Join(what, " and "),
			plural(attention, "needs", "need"), count(counts[audit.Info], "note"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count is n and noun, with an s unless n is 1.
func count(n int, noun string) string {
	return fmt.Sprintf("%d %s", n, plural(n, noun, noun+"s"))
}

// sortedFindings returns the findings most urgent first, in Check's order
// otherwise.
func sortedFindings(findings []audit.Finding) []audit.Finding {
	out := slices.Clone(findings)
	slices.SortStableFunc(out, func(a, b audit.Finding) int { return int(b.Severity) - int(a.Severity) })
	return out
}

// The JSON of arpcheck doctor --format json.
type (
	jsonDoctor struct {
		Version   int            `json:"version"`
		Command   string         `json:"command"`
		Attention bool           `json:"attention"` // some finding is a warning or critical: exit 1
		Findings  []jsonFinding  `json:"findings"`
		Summary   map[string]int `json:"summary"` // findings by severity
	}
	jsonFinding struct {
		Severity  string `json:"severity"`  // info, warning or critical
		Interface string `json:"interface"` // empty for host-wide findings
		Setting   string `json:"setting"`
		Value     string `json:"value"`
		Meaning   string `json:"meaning"`
		Fix       string `json:"fix"` // empty when nothing needs changing
	}
)

// writeDoctorJSON writes the findings as one JSON object, most urgent
// first.
func writeDoctorJSON(w io.Writer, findings []audit.Finding) error {
	j := jsonDoctor{Version: 1, Command: "doctor", Attention: audit.NeedsAttention(findings),
		Findings: []jsonFinding{}, Summary: map[string]int{"critical": 0, "warning": 0, "info": 0}}
	for _, f := range sortedFindings(findings) {
		j.Findings = append(j.Findings, jsonFinding{Severity: f.Severity.String(), Interface: f.Interface,
			Setting: f.Setting, Value: f.Value, Meaning: f.Meaning, Fix: f.Fix})
		j.Summary[f.Severity.String()]++
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}
