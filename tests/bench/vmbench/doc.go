// Package vmbench measures what the agent costs the processes of a host
// with BPF LSM: syscall overhead (openat+close, a TCP connect on loopback,
// fork+exec) with no agent, the agent in audit mode and in enforce mode at
// several policy sizes, all in one boot; the time from the agent's exec to
// the first EPERM a probe sees; the agent's memory, the kernel memory of
// its maps, its CPU idle and under an event flood; and a CPU loop and a
// syscall loop also run on the host, which give TCG's slowdown.
//
// The measuring runs in the guest as TestVMBench (a test binary the VM
// harness boots, tests/vm), which prints one line per record after Marker;
// the host side (tests/bench/cmd/vmbench) boots each kernel, collects the
// records with Parse and writes the markdown of docs/PERFORMANCE.md.
package vmbench
