package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var units = []string{"aegisbpf.service", "aegisbpf-metrics.socket"}

// stage copies the units into a temporary directory with ExecStart
// pointing at an executable stub: verify checks that the binary exists,
// and /usr/bin/aegisbpf is only installed on the target host.
func stage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	stub := filepath.Join(dir, "aegisbpf")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if u == "aegisbpf.service" {
			if !bytes.Contains(b, []byte("\nExecStart=/usr/bin/aegisbpf run\n")) {
				t.Fatal("ExecStart is not /usr/bin/aegisbpf run")
			}
			b = bytes.ReplaceAll(b, []byte("ExecStart=/usr/bin/aegisbpf "), []byte("ExecStart="+stub+" "))
		}
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func analyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): cannot verify the units")
	}
	return p
}

// TestVerify runs systemd-analyze verify; any message about our units
// (unknown keys, bad values, ordering cycles) fails, as does a non-zero
// exit.
func TestVerify(t *testing.T) {
	sa := analyze(t)
	dir := stage(t)
	args := []string{"verify", "--man=no"}
	for _, u := range units {
		args = append(args, filepath.Join(dir, u))
	}
	cmd := exec.Command(sa, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "aegisbpf") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSecurity reports systemd's exposure score and keeps it from growing
// unnoticed.
func TestSecurity(t *testing.T) {
	sa := analyze(t)
	dir := stage(t)
	out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", filepath.Join(dir, "aegisbpf.service")).CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("--offline")) {
		t.Skipf("this systemd-analyze has no security --offline: %s", out)
	}
	m := regexp.MustCompile(`Overall exposure level for aegisbpf\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze security output: %v\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security exposure: %.1f", score)
	// 3.3 with systemd 252. The rest is inherent: root, CAP_SYS_ADMIN and
	// CAP_BPF, the host network (netlink), and no mount-namespace options
	// that would shadow policy paths (see the unit's comments).
	if score > 4.0 {
		t.Errorf("exposure %.1f is above 4.0: a hardening option was lost", score)
	}
}

// TestDirectives pins the settings the daemon relies on.
func TestDirectives(t *testing.T) {
	for file, want := range map[string][]string{
		"aegisbpf.service": {
			"Type=notify", "NotifyAccess=main", "WatchdogSec=10s", "Restart=on-failure",
			"DefaultDependencies=no", "Before=sysinit.target", "Wants=aegisbpf-metrics.socket",
			"NoNewPrivileges=yes", "ProtectSystem=strict", "LimitMEMLOCK=infinity", "Environment=GOMEMLIMIT=",
			"MemoryMax=", "StartLimitBurst=", "ReadWritePaths=/sys/fs/bpf /run/aegisbpf -/var/lib/aegisbpf",
		},
		"aegisbpf-metrics.socket": {
			"ListenStream=/run/aegisbpf/metrics.sock", "SocketMode=0660", "FileDescriptorName=metrics",
			"Service=aegisbpf.service", "DefaultDependencies=no",
		},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !bytes.Contains(b, []byte("\n"+w)) {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
}

// baseUnits are the base OS's slot units (systemd/base), installed in
// /etc/systemd/system where a layer cannot replace them.
var baseUnits = []string{"aegisbpf-slot-activate.service", "aegisbpf-slot-probation.service", "aegisbpf-slot-rollback.service",
	"aegisbpf-update.service", "aegisbpf-update.timer"}

// TestVerifyBase verifies the slot units together with the layer's units
// and the base's drop-in for the agent, with the slot manager stubbed.
func TestVerifyBase(t *testing.T) {
	sa := analyze(t)
	dir := stage(t)
	stub := filepath.Join(dir, "aegisbpf")
	for _, u := range baseUnits {
		b, err := os.ReadFile(filepath.Join("base", u))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/libexec/aegisbpf/aegisbpf "), []byte(stub+" "))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dropin, err := os.ReadFile("base/aegisbpf.service.d/10-slots.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "aegisbpf.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	dropin = bytes.ReplaceAll(dropin, []byte("/usr/libexec/aegisbpf/aegisbpf "), []byte(stub+" "))
	if err := os.WriteFile(filepath.Join(dir, "aegisbpf.service.d", "10-slots.conf"), dropin, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--man=no"}
	for _, u := range append(append([]string{}, units...), baseUnits...) {
		args = append(args, filepath.Join(dir, u))
	}
	cmd := exec.Command(sa, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_UNIT_PATH="+dir+":")
	out, err := cmd.CombinedOutput()
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "aegisbpf") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for file, want := range map[string][]string{
		"base/aegisbpf-slot-activate.service":   {"DefaultDependencies=no", "Before=sysinit.target aegisbpf.service", "ExecStart=/usr/libexec/aegisbpf/aegisbpf slot activate --boot", "WantedBy=sysinit.target"},
		"base/aegisbpf-slot-probation.service":  {"Type=exec", "ExecStart=/usr/libexec/aegisbpf/aegisbpf slot probation"},
		"base/aegisbpf-slot-rollback.service":   {"ExecStart=/usr/libexec/aegisbpf/aegisbpf slot rollback --auto"},
		"base/aegisbpf-update.service":          {"Type=oneshot", "EnvironmentFile=/etc/aegisbpf/update.env", "ExecStart=/usr/libexec/aegisbpf/aegisbpf update apply"},
		"base/aegisbpf-update.timer":            {"RandomizedDelaySec=", "OnUnitActiveSec=", "WantedBy=timers.target"},
		"base/aegisbpf.service.d/10-slots.conf": {"OnFailure=aegisbpf-slot-rollback.service", "ExecStopPost=+/usr/libexec/aegisbpf/aegisbpf slot agent-stopped"},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !bytes.Contains(b, []byte("\n"+w)) {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
}
