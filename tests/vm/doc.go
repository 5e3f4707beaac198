// Package vm is the VM harness of AegisBPF: it fetches pinned Debian
// kernels, packs static test binaries into a busybox initramfs with a
// minimal init, boots them under qemu with BPF LSM enabled, streams the
// console and reports pass/fail per test binary and per kernel.
//
// The development and CI hosts cannot load BPF LSM programs, so every
// real-enforcement test runs here. See docs/adr/0001-vm-harness.md for why
// this is our own small harness rather than hugelgupf/vmtest.
//
// Nothing here leaves a qemu process behind: qemu runs in its own process
// group with a parent-death signal, and every exit path kills the group.
package vm
