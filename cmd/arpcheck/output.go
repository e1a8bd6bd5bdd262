package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// result is what a verify or repair run reports: the library's report,
// what was asked, and the exit status it ends with.
type result struct {
	command string // "verify" or "repair"
	dryRun  bool
	report  *arpprobe.Report
	status  int
	err     error // why status is 3, if it is
}

// renderReport writes res in format to w.
func renderReport(w io.Writer, format string, res *result, quiet bool) error {
	switch format {
	case formatJSON:
		return writeJSON(w, res)
	case formatPrometheus:
		return writePrometheus(w, res, time.Now())
	case formatNagios:
		return writeNagios(w, res)
	}
	return writeText(w, res, quiet)
}

// renderError writes what a run started at started that could not
// check says in format: the nagios line and the Prometheus metrics say
// UNKNOWN, the JSON report has no peers, exit_code 3 and the error;
// text says nothing (the error goes to standard error).
func renderError(w io.Writer, format, command string, started time.Time, err error) error {
	switch format {
	case formatNagios:
		return writeNagiosError(w, err)
	case formatPrometheus:
		return writePrometheusError(w, command, time.Now())
	case formatJSON:
		return writeJSONError(w, command, started, err)
	}
	return nil
}

// emit writes what write writes, through a buffer, to stdout, or
// atomically to path when set: a temporary file in the same directory,
// mode 0644, synced, then renamed over path, so a reader (node_exporter)
// sees the old report or the new one, never a part.
func emit(stdout io.Writer, path string, write func(io.Writer) error) error {
	if path == "" {
		bw := bufio.NewWriterSize(stdout, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	err = errors.Join(err, f.Chmod(0o644), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report to %s: %w", path, err)
	}
	return nil
}

// writeBytes returns a writer function for emit that writes b.
func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// render returns what fn writes.
func render(fn func(w io.Writer) error) ([]byte, error) {
	var b bytes.Buffer
	err := fn(&b)
	return b.Bytes(), err
}
