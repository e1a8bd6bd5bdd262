package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/arpcheck/arpcheck/arpprobe"
)

// jsonReport is the whole report as one value: what writeJSON writes a
// peer at a time must be byte for byte what encoding/json makes of it.
type jsonReport struct {
	Version    int         `json:"version"`
	Command    string      `json:"command"`
	DurationMS float64     `json:"duration_ms"`
	Peers      []jsonPeer  `json:"peers"`
	Summary    jsonSummary `json:"summary"`
	Started    time.Time   `json:"started"`
	DryRun     bool        `json:"dry_run,omitempty"`
	ExitCode   int         `json:"exit_code"`
	Stats      jsonStats   `json:"stats"`
	Error      *failure    `json:"error,omitempty"`
}

func TestWriteJSONStreamsTheWholeReport(t *testing.T) {
	empty := sampleResult()
	empty.report = &arpprobe.Report{Started: empty.report.Started}
	one := sampleResult()
	one.report.Peers = one.report.Peers[:1]
	dry := sampleResult()
	dry.dryRun = true
	failed := sampleResult()
	failed.err = &uncheckedErr{unknown: 1, checked: 7}
	for name, res := range map[string]*result{"sample": sampleResult(), "no peers": empty, "one peer": one, "dry run": dry,
		"unknown peers": failed} {
		h, tl := jsonHeadOf(res), jsonTailOf(res)
		whole := jsonReport{Version: h.Version, Command: h.Command, DurationMS: h.DurationMS,
			Peers:   make([]jsonPeer, len(res.report.Peers)),
			Summary: tl.Summary, Started: tl.Started, DryRun: tl.DryRun, ExitCode: tl.ExitCode, Stats: tl.Stats, Error: tl.Error}
		for i := range res.report.Peers {
			whole.Peers[i] = jsonPeerOf(&res.report.Peers[i])
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(whole); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := writeJSON(&got, res); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (res.err != nil) != strings.Contains(got.String(), `"error":{"cause":"unchecked"`) {
			t.Errorf("%s: error field wrong for err %v:\n%s", name, res.err, got.String())
		}
		if got.String() != want.String() {
			t.Errorf("%s: writeJSON wrote\n%s\nwant\n%s", name, got.String(), want.String())
		}
	}
}
