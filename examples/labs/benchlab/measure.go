package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/arpcheck/arpcheck/examples/labs/benchlab/lab"
)

// sample is one run of one tool.
type sample struct {
	wall    time.Duration
	cpu     time.Duration // user + system time of the process and the children it waited for
	maxRSS  int64         // bytes: the largest resident set of the process or of one of its children
	frames  lab.Frames
	verdict verdict
}

// runOnce re-seeds the lab's cache, runs t once inside the prober's
// namespace and measures it (see measureChild), with the requests the
// peers' namespace received meanwhile.
func runOnce(ctx context.Context, l *lab.Lab, e *env, t tool) (sample, error) {
	if err := l.Seed(); err != nil {
		return sample{}, err
	}
	// Let anything still in flight from the previous run arrive before
	// the counters start.
	time.Sleep(50 * time.Millisecond)
	if _, err := l.Requests(); err != nil {
		return sample{}, err
	}
	bin := t.bin
	if bin == "" {
		bin = e.arpcheck
	}
	m, stdout, stderr, err := measure(ctx, l, e, append([]string{bin}, t.argv(e)...))
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", t.name, err)
	}
	if m.ExitCode == 3 && t.bin == "" || m.ExitCode < 0 || m.ExitCode > 125 {
		return sample{}, fmt.Errorf("%s: exit %d: %s", t.name, m.ExitCode, firstLine(string(stderr)))
	}
	// The requests have all been sent once the process is gone.
	f, err := l.Requests()
	if err != nil {
		return sample{}, err
	}
	return sample{
		wall:    time.Duration(m.WallNs),
		cpu:     time.Duration(m.CPUNs),
		maxRSS:  m.MaxRSS,
		frames:  f,
		verdict: t.check(l, stdout, m.ExitCode),
	}, nil
}

// measurement is what the rusage helper (internal/rusage) reports about
// the command it ran.
type measurement struct {
	WallNs   int64 // from just before the fork to the end of wait(2)
	CPUNs    int64 // user + system time, with the children it waited for
	MaxRSS   int64 // bytes: its largest resident set, or one child's
	ExitCode int   // -1 when killed by a signal
}

// measure runs argv inside the prober's namespace through the rusage
// helper, and returns the measurement with argv's output. (Why a helper:
// see internal/rusage.)
func measure(ctx context.Context, l *lab.Lab, e *env, argv []string) (m measurement, stdout, stderr []byte, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return m, nil, nil, err
	}
	defer r.Close()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, e.rusage, argv...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.ExtraFiles = []*os.File{w} // fd 3
	err = lab.StartIn(l.Prober, cmd)
	w.Close()
	if err != nil {
		return m, nil, nil, err
	}
	report, readErr := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return m, nil, nil, ctx.Err()
		}
		return m, nil, nil, fmt.Errorf("%w: %s", err, firstLine(errOut.String()))
	}
	if readErr != nil {
		return m, nil, nil, readErr
	}
	if err := json.Unmarshal(report, &m); err != nil {
		return m, nil, nil, fmt.Errorf("measurement %q: %w", report, err)
	}
	return m, out.Bytes(), errOut.Bytes(), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// result is a row of the table: one tool on one lab, over several runs.
type result struct {
	tool    tool
	cfg     lab.Config
	samples []sample
}

func (r *result) walls() []time.Duration {
	w := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		w[i] = s.wall
	}
	slices.Sort(w)
	return w
}

// median returns the median wall time (the mean of the middle two for an
// even number of runs).
func (r *result) median() time.Duration { return medianOf(r.walls()) }

func medianOf(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func (r *result) medianCPU() time.Duration {
	c := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		c[i] = s.cpu
	}
	slices.Sort(c)
	return medianOf(c)
}

func (r *result) peakRSS() int64 {
	var m int64
	for _, s := range r.samples {
		m = max(m, s.maxRSS)
	}
	return m
}

// medianFrames returns the median of each frame count.
func (r *result) medianFrames() lab.Frames {
	b := make([]uint64, len(r.samples))
	u := make([]uint64, len(r.samples))
	for i, s := range r.samples {
		b[i], u[i] = s.frames.Broadcast, s.frames.Unicast
	}
	slices.Sort(b)
	slices.Sort(u)
	return lab.Frames{Broadcast: b[len(b)/2], Unicast: u[len(u)/2]}
}

func (r *result) maxBroadcast() uint64 {
	var m uint64
	for _, s := range r.samples {
		m = max(m, s.frames.Broadcast)
	}
	return m
}

// right reports whether every run was right, and the note of the first
// wrong one (or of the last run).
func (r *result) right() (bool, string) {
	for _, s := range r.samples {
		if !s.verdict.right {
			return false, s.verdict.note
		}
	}
	if len(r.samples) == 0 {
		return false, "no runs"
	}
	return true, r.samples[len(r.samples)-1].verdict.note
}
