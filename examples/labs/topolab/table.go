package main

import (
	"fmt"
	"io"
	"strings"
)

// row is one line of the table: one command of one case over all its
// runs, or a case that could not be built.
type row struct {
	name    string
	built   string
	command string // empty: the case could not be built or run
	truth   string
	runs    int
	right   int
	got     tally // what arpcheck said, over the runs
	wrote   tally // entries it wrote unasked, over the runs
	failure string
}

// add counts one run's outcome into the row.
func (r *row) add(o outcome) {
	r.runs++
	if o.right {
		r.right++
	}
	for _, g := range o.got {
		r.got.add(g)
	}
	for _, w := range o.wrote {
		r.wrote.add(w)
	}
}

// tally counts phrases in the order they were first seen.
type tally struct {
	order []string
	n     map[string]int
}

func (t *tally) add(s string) {
	if t.n == nil {
		t.n = map[string]int{}
	}
	if t.n[s] == 0 {
		t.order = append(t.order, s)
	}
	t.n[s]++
}

// String lists the phrases with their counts: "lan0 198.18.6.14: ok ×10;
// lan1 198.18.6.14: missing ×10".
func (t tally) String() string {
	var parts []string
	for _, s := range t.order {
		parts = append(parts, fmt.Sprintf("%s ×%d", s, t.n[s]))
	}
	return strings.Join(parts, "; ")
}

// writeTable writes the rows as a markdown table; runs is the number of
// runs asked for, for the heading.
func writeTable(w io.Writer, rows []row, runs int) {
	fmt.Fprintf(w, "| case | what was built | command (also --format json) | truth | arpcheck's verdicts (%d runs) | right | written unasked |\n", runs)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		if r.command == "" {
			fmt.Fprintf(w, "| %s | %s | — | — | %s | — | — |\n", r.name, cell(r.built), cell(r.failure))
			continue
		}
		wrote := "nothing"
		if len(r.wrote.order) > 0 {
			wrote = r.wrote.String()
		}
		got := r.got.String()
		if r.failure != "" {
			got = strings.TrimPrefix(got+"; ", "; ") + "lab failed: " + r.failure
		}
		fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s | %d of %d | %s |\n",
			r.name, cell(r.built), r.command, cell(r.truth), cell(got), r.right, r.runs, cell(wrote))
	}
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
