package doctor

import (
	"bytes"
	"encoding/json"
	"flag"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkNames is the order of the checks: part of the JSON document's
// stable shape.
var checkNames = []string{
	"kernel", "btf", "lsm", "bpffs", "cgroup2", "ringbuf", "systemd", "sysext",
	"dm-verity", "erofs", "trusted-keys", "policy", "slot-space", "clock",
}

func TestHealthyHost(t *testing.T) {
	f := newFakeHost(t)
	results := f.h.Run()
	var names []string
	for _, r := range results {
		names = append(names, r.Name)
		expect(t, r, OK)
	}
	if !slices.Equal(names, checkNames) {
		t.Errorf("checks %v, want %v", names, checkNames)
	}
	if w := Worst(results); w != OK {
		t.Errorf("worst %s, want OK", w)
	}
}

func TestWorst(t *testing.T) {
	rs := []Result{{Status: OK}, {Status: Warn}, {Status: OK}}
	if w := Worst(rs); w != Warn {
		t.Errorf("worst %s, want WARN", w)
	}
	if w := Worst(append(rs, Result{Status: Fail})); w != Fail {
		t.Errorf("worst %s, want FAIL", w)
	}
	if w := Worst(nil); w != OK {
		t.Errorf("worst of nothing %s, want OK", w)
	}
}

// sampleResults has one result of each status, with the shapes the
// golden files pin down.
var sampleResults = []Result{
	{Name: "kernel", Status: OK, Detail: "kernel 6.12.0-26-amd64 (6.1 or later)"},
	{Name: "erofs", Status: Warn, Detail: "module erofs is available but not loaded", Fix: "load it at boot"},
	{Name: "lsm", Status: Fail, Detail: "bpf is not an active LSM (active: capability,yama)",
		Fix: `add "lsm=capability,yama,bpf" to the kernel command line`},
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testenv.Golden(t, filepath.Join("testdata", name), got, *update)
}

func TestReportJSON(t *testing.T) {
	r := NewReport("/", sampleResults)
	if r.Status != Fail || r.OK != 1 || r.Warn != 1 || r.Fail != 1 {
		t.Errorf("summary %+v", r)
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", b.Bytes())

	var doc struct {
		Format int
		Status string
		Checks []map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Format != ReportFormat || doc.Status != "fail" || len(doc.Checks) != 3 {
		t.Errorf("document %+v", doc)
	}
	for _, c := range doc.Checks {
		for _, k := range []string{"name", "status", "detail", "fix"} {
			if _, ok := c[k]; !ok {
				t.Errorf("check %v lacks %q", c, k)
			}
		}
	}
}

func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := NewReport("/", sampleResults).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", b.Bytes())
}

func TestStatusText(t *testing.T) {
	for s, want := range map[Status]string{OK: "ok", Warn: "warn", Fail: "fail"} {
		b, err := s.MarshalText()
		if err != nil || string(b) != want {
			t.Errorf("%v.MarshalText() = %q, %v; want %q", s, b, err, want)
		}
	}
	for _, s := range []Status{OK, Warn, Fail} {
		b, _ := s.MarshalText()
		var back Status
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %v, %v", b, back, err)
		}
	}
	var s Status
	if err := s.UnmarshalText([]byte("bad")); err == nil {
		t.Error(`UnmarshalText("bad") did not fail`)
	}
	if _, err := Status(7).MarshalText(); err == nil {
		t.Error("Status(7).MarshalText() did not fail")
	}
}
