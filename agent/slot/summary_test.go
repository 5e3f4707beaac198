package slot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadSummary(t *testing.T) {
	m, _, dirs := newManager(t)
	ctx := t.Context()
	clock := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { clock = clock.Add(time.Minute); return clock }

	if _, ok, err := ReadSummary(m.Dir); ok || err != nil {
		t.Fatalf("no state file: ok %v err %v, want neither", ok, err)
	}
	v2OnProbation(t, m, dirs)
	sum, ok, err := ReadSummary(m.Dir)
	if !ok || err != nil {
		t.Fatalf("ReadSummary: ok %v err %v", ok, err)
	}
	switchedAt := state(t, m).History[len(state(t, m).History)-2].Time // switch, then activate
	want := Summary{ActiveSerial: 2, Floor: 1, Pending: true, PendingSince: switchedAt}
	if sum != want {
		t.Fatalf("on probation: %+v, want %+v", sum, want)
	}

	must(t, m.AgentStopped(ctx, "watchdog", "killed", "ABRT"))
	sum, _, err = ReadSummary(m.Dir)
	must(t, err)
	h := state(t, m).History
	var rolledBack time.Time
	for _, ev := range h {
		if ev.Action == "rollback" {
			rolledBack = ev.Time
		}
	}
	want = Summary{ActiveSerial: 1, Floor: 1, LastRollback: rolledBack, Bad: 1}
	if rolledBack.IsZero() || sum != want {
		t.Fatalf("after the rollback: %+v, want %+v", sum, want)
	}

	// A damaged state file is reported, not read as empty.
	must(t, os.WriteFile(filepath.Join(m.Dir, StateFile), []byte("{\"format\": 1,"), 0o644))
	if _, ok, err := ReadSummary(m.Dir); !ok || err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Fatalf("damaged state: ok %v err %v, want ok and an error naming %s", ok, err, StateFile)
	}
}
