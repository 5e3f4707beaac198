package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aegisbpf/aegisbpf/agent/doctor"
)

func TestDoctorExitStatus(t *testing.T) {
	for _, c := range []struct {
		name           string
		ok, warn, fail int
		strict, failed bool
	}{
		{"all ok", 3, 0, 0, false, false},
		{"all ok, strict", 3, 0, 0, true, false},
		{"warnings", 2, 1, 0, false, false},
		{"warnings, strict", 2, 1, 0, true, true},
		{"a failure", 1, 1, 1, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := doctorErr(doctor.Report{OK: c.ok, Warn: c.warn, Fail: c.fail}, c.strict)
			if (err != nil) != c.failed {
				t.Errorf("error %v, want failure %v", err, c.failed)
			}
		})
	}
}

// TestDoctorEmptyRoot checks a host with nothing at all: every check has an
// outcome, the JSON document parses, and the verb fails.
func TestDoctorEmptyRoot(t *testing.T) {
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err := doctorCommand().Execute(context.Background(), env, []string{"--json", "--root", t.TempDir()})
	if err == nil {
		t.Fatal("doctor of an empty tree succeeded")
	}
	var r doctor.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if r.Format != doctor.ReportFormat || len(r.Checks) != r.OK+r.Warn+r.Fail || r.Fail == 0 || r.Status != doctor.Fail {
		t.Errorf("report %+v", r)
	}

	err = doctorCommand().Execute(context.Background(), env, []string{"extra"})
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Errorf("doctor extra: %v, want a usage error", err)
	}
}
