package audit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeCgroups resolves the cgroup ids of testdata/journal.jsonl.
type fakeCgroups map[uint64]string

func (f fakeCgroups) Lookup(id uint64) (string, bool) { p, ok := f[id]; return p, ok }

var testCgroups = fakeCgroups{
	1:    "/",
	1001: "/system.slice/ssh.service",
	1003: "/user.slice/user-1000.slice/session-3.scope",
	1004: "/system.slice/cloud-init.service",
	1005: "/system.slice/ci-runner.service",
	1006: "/system.slice/ci-runner.service/job-7",
	1007: "/system.slice/app.service",
	1008: "/system.slice/app.service/backup",
}

// testNow is an hour after the last event of testdata/journal.jsonl.
var testNow = time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testReport builds the report of testdata/journal.jsonl with the agent
// counters of testdata/metrics.txt.
func testReport(t *testing.T) *Report {
	t.Helper()
	in, err := ReadJournal(bytes.NewReader(readTestdata(t, "journal.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCounters(bytes.NewReader(readTestdata(t, "metrics.txt")))
	if err != nil {
		t.Fatal(err)
	}
	return Build(in, Options{Source: "testdata/journal.jsonl", Since: 24 * time.Hour, Cutoff: testNow.Add(-24 * time.Hour),
		Cgroups: testCgroups, Counters: c})
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testenv.Golden(t, filepath.Join("testdata", name), got, *update)
}
