package e2e

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"testing"

	"github.com/aegisbpf/aegisbpf/image/appliance"
)

// EnvVar gates the end-to-end tests: they run only when it is "1" (make
// test-e2e sets it), because each boots a VM under TCG for minutes.
const EnvVar = "AEGISBPF_E2E"

// KeepEnvVar set to "1" keeps the work directories of VMs started by
// StartT (console.log, the /var disk) for a look after the test.
const KeepEnvVar = "AEGISBPF_E2E_KEEP"

// RequireE2E skips t unless AEGISBPF_E2E=1. When the tests were asked for
// but the host cannot run them (not root, a tool missing), it fails
// instead: a requested end-to-end run must not pass by skipping.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvVar) != "1" {
		t.Skipf("end-to-end appliance test: set %s=1 to run it (make test-e2e does); it builds the appliance as root and boots it in qemu under TCG, which takes minutes", EnvVar)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 but not root: building the appliance needs root", EnvVar)
	}
	for _, tool := range []string{"qemu-system-x86_64", "mmdebstrap", "mkfs.erofs", "mkfs.ext4", "tar", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s=1 but %s is missing (make deps installs it)", EnvVar, tool)
		}
	}
}

// BuildT builds the appliance with the guest agent into a temporary
// directory of t, with cfg's extra files; the base root comes from the
// cache when it can.
func BuildT(t testing.TB, cfg appliance.Config) *appliance.Appliance {
	t.Helper()
	if cfg.OutDir == "" {
		cfg.OutDir = t.TempDir()
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	a, err := BuildAppliance(t.Context(), cfg)
	if err != nil {
		t.Fatalf("building the appliance: %v", err)
	}
	return a
}

// StartT starts a VM on a and waits for its guest agent. The VM is closed
// when t ends; if t failed, the console's tail goes to the test log first.
func StartT(t testing.TB, a *appliance.Appliance, cfg Config) *VM {
	t.Helper()
	vm := LaunchT(t, a, cfg)
	wait := cfg.Timeout
	if wait == 0 {
		wait = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if _, err := vm.WaitReady(ctx); err != nil {
		t.Fatalf("booting the appliance: %v", err)
	}
	return vm
}

// LaunchT starts a VM on a like StartT but returns without waiting for
// its guest, so that several boot at once.
func LaunchT(t testing.TB, a *appliance.Appliance, cfg Config) *VM {
	t.Helper()
	cfg.Appliance = a
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "e2e-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if os.Getenv(KeepEnvVar) == "1" {
				t.Logf("kept the VM work directory %s (%s=1)", dir, KeepEnvVar)
				return
			}
			os.RemoveAll(dir)
		})
		cfg.WorkDir = dir
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	vm, err := Start(context.WithoutCancel(t.Context()), cfg)
	if err != nil {
		t.Fatalf("starting the VM: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console tail (%s):\n%s", vm.ConsolePath(), vm.ConsoleTail(60))
		}
		vm.Close()
	})
	return vm
}

// testLogger logs through t's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
}
