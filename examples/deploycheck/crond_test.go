package deploycheck

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// cronJob is one job line of an /etc/cron.d file.
type cronJob struct {
	Line    int
	Time    string // the schedule: five fields, or an @ macro
	User    string
	Command string
}

var (
	cronEnv    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\s*=`)
	cronMacros = map[string]bool{"@reboot": true, "@yearly": true, "@annually": true, "@monthly": true,
		"@weekly": true, "@daily": true, "@midnight": true, "@hourly": true}
	cronFields = []struct {
		name     string
		min, max int
		names    []string // names for min, min+1, ...
	}{
		{"minute", 0, 59, nil},
		{"hour", 0, 23, nil},
		{"day of month", 1, 31, nil},
		{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
		{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
	}
)

// parseCronD reads an /etc/cron.d file as Debian's cron does: comments,
// blank lines, NAME=value settings, and jobs of five time fields (or an
// @ macro), a user name and a command. It returns the jobs, or an error
// naming the first line cron would reject. The file must end in a
// newline: cron ignores a last line without one.
func parseCronD(text string) ([]cronJob, error) {
	if text != "" && !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("cron.d: the last line does not end in a newline; cron ignores it")
	}
	var jobs []cronJob
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		s := strings.TrimSpace(line)
		if s == "" || strings.HasPrefix(s, "#") || cronEnv.MatchString(s) {
			continue
		}
		f := strings.Fields(s)
		var job cronJob
		if strings.HasPrefix(f[0], "@") {
			if !cronMacros[f[0]] {
				return nil, fmt.Errorf("cron.d line %d: unknown macro %s", n, f[0])
			}
			if len(f) < 3 {
				return nil, fmt.Errorf("cron.d line %d: want %s, a user and a command", n, f[0])
			}
			job = cronJob{Line: n, Time: f[0], User: f[1]}
			job.Command = rest(s, 2)
		} else {
			if len(f) < 7 {
				return nil, fmt.Errorf("cron.d line %d: want 5 time fields, a user and a command; got %d fields", n, len(f))
			}
			for k, c := range cronFields {
				if err := checkCronField(f[k], c.min, c.max, c.names); err != nil {
					return nil, fmt.Errorf("cron.d line %d: %s field %q: %w", n, c.name, f[k], err)
				}
			}
			job = cronJob{Line: n, Time: strings.Join(f[:5], " "), User: f[5]}
			job.Command = rest(s, 6)
		}
		if !regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`).MatchString(job.User) {
			return nil, fmt.Errorf("cron.d line %d: %q is not a user name", n, job.User)
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// rest returns s from its field number k (counting from 0) on, as written.
func rest(s string, k int) string {
	for ; k > 0; k-- {
		s = strings.TrimLeft(s, " \t")
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return ""
		}
		s = s[i:]
	}
	return strings.TrimSpace(s)
}

// checkCronField checks one time field: a comma-separated list of *, a
// number or name, or a range a-b, each optionally with a /step.
func checkCronField(field string, lo, hi int, names []string) error {
	value := func(v string) (int, error) {
		for i, name := range names {
			if strings.EqualFold(v, name) {
				return lo + i, nil
			}
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%q is not a number from %d to %d", v, lo, hi)
		}
		return n, nil
	}
	for _, item := range strings.Split(field, ",") {
		r, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 || n > hi {
				return fmt.Errorf("bad step %q", step)
			}
		}
		if r == "*" {
			continue
		}
		a, b, isRange := strings.Cut(r, "-")
		x, err := value(a)
		if err != nil {
			return err
		}
		if isRange {
			y, err := value(b)
			if err != nil {
				return err
			}
			if y < x {
				return fmt.Errorf("range %s runs backwards", r)
			}
		} else if hasStep {
			return fmt.Errorf("a step needs * or a range, not %q", r)
		}
	}
	return nil
}
