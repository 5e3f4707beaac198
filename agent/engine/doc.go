// Package engine puts a policy into the kernel: it resolves rules to the
// keys the BPF programs match on, loads one instance of the programs with
// maps sized to the policy, attaches and pins their links under
// /sys/fs/bpf/aegisbpf/<instance>/, and only then releases older instances.
//
// Continuity. Every apply, whether a new agent process after a crash or
// upgrade or a policy change within one process, makes a complete new
// instance and attaches it before the previous one is released
// (make-before-break). While both are attached, an access is denied if either
// instance denies it, so a file that both the old and the new policy deny is
// denied at every instant, and one that both allow is never denied. A crash
// leaves the pinned links in place: the kernel keeps enforcing the last
// applied policy with nobody watching. Closing an Instance only closes file
// descriptors; detaching is an explicit Release (docs/adr/0003).
//
// Concurrency: an Engine serializes Apply and Release with a lock file
// beside the pins; Instance methods may be called from several goroutines.
package engine
