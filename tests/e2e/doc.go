// Package e2e boots the AegisBPF appliance (image/appliance) in qemu and
// drives it: it runs shell commands in the guest and returns their output
// and exit status, reads and writes guest files, reads the journal, reboots
// the guest, hard-resets it (power loss), and powers it off.
//
// The channel is a virtio-serial port (org.aegisbpf.ctl) served in the
// guest by a small static agent (tests/e2e/guestagent) that the driver adds
// to the appliance (BuildAppliance). The port appears with udev and the
// agent starts with it, early in boot. Every request names the boot it is
// for, so a command queued before a reset never runs after it; the qemu
// machine protocol (QMP) reports resets and the port closing, which fail
// requests in flight at once rather than at their deadline. The serial
// console is kept in WorkDir/console.log for diagnosis, or attached to the
// terminal for an interactive shell (Config.Interactive).
//
// qemu runs under TCG by default (KVM guests hang on the project's
// machines; AEGISBPF_VM_ACCEL=kvm overrides). It runs in its own process
// group with a parent-death signal, and every exit path — Close, the
// Config.Timeout, the end of the context given to Start, the death of the
// test process — kills the group, so no qemu is left behind.
//
// A VM is safe for concurrent use: commands from several goroutines run
// concurrently in the guest.
package e2e
