package testenv

import (
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// GuestEnv is set to "1" by the VM guest init.
const GuestEnv = "AEGISBPF_VM_GUEST"

// InVM reports whether the test runs inside the VM harness guest.
func InVM() bool { return os.Getenv(GuestEnv) == "1" }

// RequireVM skips the test unless it runs inside the VM guest, where BPF LSM
// is active. The reason names what is missing on this host.
func RequireVM(t testing.TB) {
	t.Helper()
	if InVM() {
		return
	}
	reason := "needs the VM guest (make test-kernel)"
	if lsm, err := os.ReadFile("/sys/kernel/security/lsm"); err == nil && !strings.Contains(string(lsm), "bpf") {
		reason += ": this kernel's active LSMs are " + strings.TrimSpace(string(lsm)) + ", without bpf"
	}
	t.Skip(reason)
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// RequireBPFLSM skips the test on a host whose kernel cannot run BPF LSM
// programs, naming what is missing. Inside the VM guest it never skips: a
// guest without BPF LSM is a harness failure, and the test must fail loudly.
func RequireBPFLSM(t testing.TB) {
	t.Helper()
	if InVM() {
		return
	}
	lsm, err := os.ReadFile("/sys/kernel/security/lsm")
	switch {
	case err != nil:
		t.Skipf("BPF LSM unavailable: reading the active LSM list: %v (run it in the VM: make test-kernel)", err)
	case !strings.Contains(","+strings.TrimSpace(string(lsm))+",", ",bpf,"):
		t.Skipf("BPF LSM unavailable: active LSMs are %q, without bpf (run it in the VM: make test-kernel)", strings.TrimSpace(string(lsm)))
	}
	if err := features.HaveProgramType(ebpf.LSM); err != nil {
		t.Skipf("BPF LSM unavailable: program type LSM cannot be loaded here: %v (run it in the VM: make test-kernel)", err)
	}
}
