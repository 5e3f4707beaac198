package kernel

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/bpf"
)

// protectHook is AEGIS_HOOK_PROTECT in bpf/abi.h: the decisions slot of
// protection decisions.
const protectHook = 7

// applyProtect applies one rule holding protection kind.
func applyProtect(t *testing.T, e *engine.Engine, audit bool, kind engine.Protect) *engine.Instance {
	t.Helper()
	spec := engine.Spec{
		Enforce:     !audit,
		Rules:       []engine.RuleSpec{{ID: "protect", Audit: audit}},
		Protections: []engine.ProtectTarget{{Rule: 0, Kind: kind}},
	}
	rs, err := engine.Resolve(spec, engine.HostFS)
	if err != nil {
		t.Fatalf("resolving rules: %v", err)
	}
	inst, err := e.Apply(rs)
	if err != nil {
		t.Fatalf("applying rules: %v", err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

func protectDecisions(t *testing.T, inst *engine.Instance, action uint32) uint64 {
	t.Helper()
	return sumPerCPU(t, inst, bpf.AegisMapDecisions, protectHook*4+action)
}

// ptraceAttach attaches to pid and detaches again.
func ptraceAttach(pid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		return err
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return err
	}
	return unix.PtraceDetach(pid)
}

func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(busybox, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sleeper: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// TestPtraceDenied: a ptrace protection refuses PTRACE_ATTACH (and the
// /proc/PID/mem access check) in enforce mode and reports it in audit mode.
func TestPtraceDenied(t *testing.T) {
	e, _ := setup(t)
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	wantAllowed(t, "attach without a policy", ptraceAttach(pid))

	inst := applyProtect(t, e, false, engine.ProtectPtrace)
	wantDenied(t, "attach with ptrace denied", ptraceAttach(pid))
	// mm_access turns the refusal into EACCES.
	if _, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem"); !errors.Is(err, unix.EACCES) {
		t.Errorf("open /proc/PID/mem with ptrace denied: got %v, want EACCES", err)
	}
	if n := protectDecisions(t, inst, 1); n < 2 {
		t.Errorf("protection deny decisions = %d, want >= 2", n)
	}
	// Read-mode access checks are not ptrace: journald, ps and lsof read
	// /proc/PID/exe and fd of other processes.
	if _, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil {
		t.Errorf("readlink /proc/PID/exe with ptrace denied: %v, want allowed", err)
	}
	if _, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd"); err != nil {
		t.Errorf("listing /proc/PID/fd with ptrace denied: %v, want allowed", err)
	}

	// Applying replaces the enforcing instance.
	inst = applyProtect(t, e, true, engine.ProtectPtrace)
	wantAllowed(t, "attach with ptrace audited", ptraceAttach(pid))
	if n := protectDecisions(t, inst, 2); n < 1 {
		t.Errorf("protection audit decisions = %d, want >= 1", n)
	}
}

func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), "", 0)
}

// TestModuleLoadDenied: a module-load protection refuses finit_module
// (kernel_read_file, READING_MODULE) and init_module (kernel_load_data,
// LOADING_MODULE) of any image. Without it the kernel gets to parse the
// image, which is not a module, and refuses it otherwise.
func TestModuleLoadDenied(t *testing.T) {
	e, _ := setup(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Longer than an ELF header, so the kernel reaches the hook before
	// finding it is no module.
	img := append([]byte("\x7fELF not a module"), make([]byte, 256)...)
	base := finitModule(exe)
	if errors.Is(base, unix.ENOSYS) {
		t.Skip("kernel without module support")
	}
	if base == nil || errors.Is(base, unix.EPERM) {
		t.Fatalf("finit_module of a non-module without a policy: got %v, want a non-EPERM error", base)
	}
	if err := unix.InitModule(img, ""); err == nil || errors.Is(err, unix.EPERM) {
		t.Fatalf("init_module of a non-module without a policy: got %v, want a non-EPERM error", err)
	}

	inst := applyProtect(t, e, false, engine.ProtectModuleLoad)
	wantDenied(t, "finit_module with module loading denied", finitModule(exe))
	wantDenied(t, "init_module with module loading denied", unix.InitModule(img, ""))
	if n := protectDecisions(t, inst, 1); n < 2 {
		t.Errorf("protection deny decisions = %d, want >= 2", n)
	}

	// Applying replaces the enforcing instance.
	inst = applyProtect(t, e, true, engine.ProtectModuleLoad)
	if err := finitModule(exe); errors.Is(err, unix.EPERM) {
		t.Errorf("finit_module with module loading audited: got EPERM")
	}
	if n := protectDecisions(t, inst, 2); n < 1 {
		t.Errorf("protection audit decisions = %d, want >= 1", n)
	}
}
