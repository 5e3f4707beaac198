// Package kernel holds the real-kernel tests of AegisBPF: BPF LSM programs
// loaded into a kernel that enforces them. They skip on a host without BPF
// LSM and run for real in the VM harness (make test-kernel), which fails when
// a guest ran none of them.
package kernel
