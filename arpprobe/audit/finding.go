package audit

import "fmt"

// Severity says how much a finding needs attention.
type Severity int

// The severities, from least to most urgent.
const (
	// Info: worth knowing, nothing to change.
	Info Severity = iota
	// Warning: a setting or entry that makes a recycled address hurt
	// longer; change it unless it is meant.
	Warning
	// Critical: the neighbour table is full; hosts become unreachable.
	Critical
)

// String returns "info", "warning" or "critical".
func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Finding is one thing Check found.
type Finding struct {
	Severity Severity
	// Interface is the interface concerned; empty for what is host-wide
	// (gc_thresh, how arpcheck runs).
	Interface string
	// Setting names what was looked at: a sysctl as sysctl(8) names it
	// ("net.ipv4.neigh.eth0.locktime"), or "PERMANENT entries",
	// "extern_learn entries", "neighbour table", "arpcheck".
	Setting string
	// Value is its value as read, such as "200" or "2 entries: ...".
	Value string
	// Meaning says in one line what it means when an address is recycled.
	Meaning string
	// Fix says what to change; for an Info finding, what could be
	// changed, if anything.
	Fix string
}

// NeedsAttention reports whether any finding is a Warning or worse.
func NeedsAttention(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity >= Warning {
			return true
		}
	}
	return false
}
