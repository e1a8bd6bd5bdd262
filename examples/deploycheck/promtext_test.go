package deploycheck

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The Prometheus text exposition format, as node_exporter's textfile
// collector reads it: "# HELP name text", "# TYPE name type", and samples
// "name{label="value",...} value [timestamp]".
var (
	promName   = `[a-zA-Z_:][a-zA-Z0-9_:]*`
	promLabels = `\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*,?)?\}`
	promSample = regexp.MustCompile(`^(` + promName + `)(` + promLabels + `)? (\S+)(?: (-?[0-9]+))?$`)
	promHelp   = regexp.MustCompile(`^# HELP (` + promName + `) .*$`)
	promType   = regexp.MustCompile(`^# TYPE (` + promName + `) (counter|gauge|histogram|summary|untyped)$`)
)

// parsePromText checks text against the format and returns the sample
// values by series (name and labels as written). It rejects what the
// textfile collector rejects: malformed lines, a TYPE after its samples
// or twice, and a series given twice.
func parsePromText(text string) (map[string]float64, error) {
	series := map[string]float64{}
	typed := map[string]bool{}
	sampled := map[string]bool{}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("no newline at the end")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		switch {
		case line == "":
		case strings.HasPrefix(line, "# HELP "):
			if !promHelp.MatchString(line) {
				return nil, fmt.Errorf("line %d: bad HELP: %q", n, line)
			}
		case strings.HasPrefix(line, "# TYPE "):
			m := promType.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: bad TYPE: %q", n, line)
			}
			if typed[m[1]] || sampled[m[1]] {
				return nil, fmt.Errorf("line %d: TYPE of %s after its samples or twice", n, m[1])
			}
			typed[m[1]] = true
		case strings.HasPrefix(line, "#"):
		default:
			m := promSample.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: not a sample: %q", n, line)
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: value %q: %v", n, m[3], err)
			}
			key := m[1] + m[2]
			if _, dup := series[key]; dup {
				return nil, fmt.Errorf("line %d: series %s given twice", n, key)
			}
			series[key] = v
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				sampled[strings.TrimSuffix(m[1], suffix)] = true
			}
		}
	}
	return series, nil
}

func TestParsePromText(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    int // series
		wantErr string
	}{
		{name: "gauges with labels", text: "# HELP a_b Peers.\n# TYPE a_b gauge\na_b{verdict=\"ok\"} 3\na_b{verdict=\"stale\"} 0\nc 1.5e-3 1700000000000\n", want: 3},
		{name: "escaped label value", text: "x{l=\"a\\\"b\\\\c\\n\"} 1\n", want: 1},
		{name: "NaN and Inf", text: "x NaN\ny +Inf\n", want: 2},
		{name: "empty", text: "\n", want: 0},
		{name: "no final newline", text: "x 1", wantErr: "newline"},
		{name: "bad name", text: "1x 1\n", wantErr: "not a sample"},
		{name: "unquoted label", text: "x{l=a} 1\n", wantErr: "not a sample"},
		{name: "no value", text: "x\n", wantErr: "not a sample"},
		{name: "bad value", text: "x one\n", wantErr: "value"},
		{name: "bad type", text: "# TYPE x gauges\nx 1\n", wantErr: "bad TYPE"},
		{name: "type after sample", text: "x 1\n# TYPE x gauge\n", wantErr: "after its samples"},
		{name: "duplicate series", text: "x{a=\"1\"} 1\nx{a=\"1\"} 2\n", wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePromText(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("got %d series, %v; want %d, no error", len(got), err, tt.want)
			}
		})
	}
}
