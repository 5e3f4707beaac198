package vmbench

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestPhases reads the start-up steps from a log written by slog's text
// handler, as the agent writes it.
func TestPhases(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("agent starting", "version", "dev")
	log.Info("policy verified", "serial", 3, "digest", "ab12", "preflight", 1200*time.Millisecond, "after", 1500*time.Millisecond)
	log.Info("policy resolved", "entries", "file 3 inodes", "after", 2*time.Second)
	log.Info("instance attached", "instance", "0001", "rules", "x y", "load", 300*time.Millisecond,
		"fill", 40*time.Millisecond, "attach", 5*time.Millisecond)
	got := Phases(buf.String())
	want := map[string]time.Duration{"preflight": 1200 * time.Millisecond, "verify": 300 * time.Millisecond, "resolve": 500 * time.Millisecond,
		"load": 300 * time.Millisecond, "fill": 40 * time.Millisecond, "attach": 5 * time.Millisecond}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// TestParseAndReport round-trips records through console lines with the
// harness's prefix and writes the report.
func TestParseAndReport(t *testing.T) {
	var console bytes.Buffer
	console.WriteString("[6.1] booting\n")
	emit := func(r Record) {
		console.WriteString("[6.1] ")
		if err := Emit(&console, r); err != nil {
			t.Fatal(err)
		}
	}
	emit(Record{Setup: &Setup{Kernel: "6.1.0-56-amd64", Runs: 2, Rules: []int{1, 100000},
		Iterations: map[string]int{OpOpen: 10, OpConnect: 10, OpExec: 10}, Mix: Mix}})
	emit(Record{Calibration: &Calibration{CPULoop: 2 * time.Second, Compute: 2 * time.Second, Syscall: 2 * time.Microsecond}})
	for _, n := range []int{1, 100000} {
		for _, mode := range []string{ModeNone, ModeAudit, ModeEnforce, ModeNone} {
			for _, op := range Ops {
				d := 10 * time.Microsecond
				if mode == ModeEnforce {
					d = 11 * time.Microsecond
				}
				emit(Record{Sample: &Sample{Rules: n, Mode: mode, Op: op, Runs: []time.Duration{d, d}}})
			}
		}
		for _, mode := range []string{ModeAudit, ModeEnforce} {
			emit(Record{Start: &Start{Rules: n, Mode: mode, ToReady: time.Second, ToDeny: time.Second,
				DenyCPU: 400 * time.Millisecond, RSS: 30 << 20, MapBytes: uint64(n) * 100, Maps: 20,
				Phases: map[string]time.Duration{"fill": 2 * time.Second}}})
		}
	}
	emit(Record{Idle: &Idle{Rules: 100000, Duration: time.Minute, CPU: 300 * time.Millisecond}})
	emit(Record{Flood: &Flood{Rules: 100000, Duration: 10 * time.Second, Events: 50000, RSSPeak: 35 << 20}})
	run, err := Parse(&console)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Samples) != 24 || len(run.Starts) != 4 || run.Idle == nil || run.Flood == nil || run.Calibration == nil {
		t.Fatalf("parsed %d samples, %d starts, idle %v, flood %v", len(run.Samples), len(run.Starts), run.Idle, run.Flood)
	}
	r := &Report{Date: time.Unix(0, 0), HostCPU: "test", Command: "vmbench",
		Host:    Calibration{CPULoop: 100 * time.Millisecond, Compute: 100 * time.Millisecond, Syscall: 100 * time.Nanosecond},
		Kernels: []KernelRun{{Name: "6.1", Run: run}}}
	var out strings.Builder
	if err := r.Markdown(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 6.1 (6.1.0-56-amd64) | 20.0× | 20.0× | 20.0× |",
		"| 100000 | open | 10.00 µs (10.00 µs / 10.00 µs) | 10.00 µs | 1.000× | 11.00 µs | 1.100× |",
		"| open overhead, enforce, 100000 rules ≤ 1.03× | 6.1 | 1.100× | **no** | |",
		"| open+close, one-rule policy ≤ 1.05× | 6.1 | 1.100× | **no** | 1.14–1.17× |",
		"| exec to enforcement ≤ 100 ms of CPU (100000 rules) | 6.1 | 400 ms in TCG, about 20 ms at the compute factor 20× | yes | |",
		"| agent RSS ≤ 40 MB under an event flood | 6.1 | 35.0 MiB at 5000 events/s | yes | |",
		"| agent CPU < 0.1% idle | 6.1 | 0.500% in TCG (100000 rules) | **no** | |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestParseErrors: a broken record names its line; no setup is an error.
func TestParseErrors(t *testing.T) {
	if _, err := Parse(strings.NewReader("x\n[6.1] " + Marker + "{bad\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad record: %v", err)
	}
	if _, err := Parse(strings.NewReader("nothing here\n")); err == nil {
		t.Error("no setup record parsed without error")
	}
}
