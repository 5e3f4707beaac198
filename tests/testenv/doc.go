// Package testenv holds helpers that gate tests on the environment they need:
// the VM guest with BPF LSM, root, a kernel version.
//
// Kernel-facing tests call RequireVM. On the development host they skip with a
// reason; inside the VM harness (tests/vm) the guest init sets
// AEGISBPF_VM_GUEST=1 and they run for real. The harness fails the job when a
// guest ran zero tests, so a skip there is never a pass.
package testenv
