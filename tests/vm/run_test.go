package vm

import (
	"io"
	"strings"
	"testing"
)

func TestParseConsole(t *testing.T) {
	console := `[    0.000000] Linux version 6.1.0
AEGISVM: boot kernel=6.1.0 lsm=lockdown,capability,landlock,bpf
AEGISVM: begin kernel
=== RUN   TestA
--- PASS: TestA (0.01s)
=== RUN   TestB
    --- PASS: TestB/sub (0.00s)
--- FAIL: TestB (0.02s)
--- SKIP: TestC (0.00s)
AEGISVM: end kernel rc=1
AEGISVM: begin empty
AEGISVM: end empty rc=0
AEGISVM: done
`
	res := &Result{}
	var out strings.Builder
	parseConsole(strings.NewReader(console), res, &out, "[k] ")
	if !res.Booted || !res.Done || res.LSM != "lockdown,capability,landlock,bpf" {
		t.Fatalf("boot state = %+v", res)
	}
	if len(res.Binaries) != 2 {
		t.Fatalf("binaries = %d, want 2", len(res.Binaries))
	}
	b := res.Binaries[0]
	if b.ExitCode != 1 || strings.Join(b.Passed, ",") != "TestA" || strings.Join(b.Failed, ",") != "TestB" ||
		strings.Join(b.Skipped, ",") != "TestC" {
		t.Errorf("kernel binary = %+v", b)
	}
	if !strings.HasPrefix(out.String(), "[k] [    0.000000]") {
		t.Errorf("console not streamed with prefix: %q", out.String()[:30])
	}
	err := res.Err()
	for _, want := range []string{"kernel exited 1", "failed: TestB", "skipped inside the VM: TestC", "empty ran zero tests"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v, want it to mention %q", err, want)
		}
	}
}

func TestResultErr(t *testing.T) {
	tests := []struct {
		name    string
		console string
		want    string
	}{
		{"no boot", "[ 0.1] Kernel panic\n", "did not boot"},
		{"no bpf lsm", "AEGISVM: boot kernel=x lsm=lockdown,capability\nAEGISVM: done\n", "bpf is not an active LSM"},
		{"cut short", "AEGISVM: boot kernel=x lsm=bpf\nAEGISVM: begin k\n=== RUN   TestA\n", "did not finish"},
		{"module", "AEGISVM: boot kernel=x lsm=bpf\nAEGISVM: module-failed /lib/modules/erofs.ko\nAEGISVM: done\n", "erofs.ko"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &Result{}
			parseConsole(strings.NewReader(tt.console), res, io.Discard, "")
			if err := res.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Err() = %v, want %q", err, tt.want)
			}
		})
	}
	ok := &Result{}
	parseConsole(strings.NewReader("AEGISVM: boot kernel=x lsm=a,bpf\nAEGISVM: begin k\n--- PASS: TestA (0s)\nAEGISVM: end k rc=0\nAEGISVM: done\n"), ok, io.Discard, "")
	if err := ok.Err(); err != nil {
		t.Fatalf("clean run: Err() = %v", err)
	}
}

func TestVersionLess(t *testing.T) {
	a, b := "linux-image-6.12.9+deb12-amd64-unsigned", "linux-image-6.12.117+deb12-amd64-unsigned"
	if !versionLess(a, b) || versionLess(b, a) {
		t.Errorf("versionLess(%s, %s) wrong", a, b)
	}
}

func TestInitScriptReportsEachBinary(t *testing.T) {
	s := initScript(&Job{Tests: []TestBinary{{Name: "kernel", Args: []string{"-test.run=^TestX$"}}}, Env: map[string]string{"A": "it's"}}, []string{"/lib/modules/a.ko"})
	for _, want := range []string{"insmod /lib/modules/a.ko", "AEGISVM: begin kernel", "'-test.run=^TestX$'", "rc=$?", "export A='it'\\''s'", "poweroff -f"} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q", want)
		}
	}
}
