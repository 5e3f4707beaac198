// Package doctor validates a host before the agent is rolled out to it
// (phase 0 of docs/ROLLOUT_PLAN.md): kernel, BTF, the BPF LSM, bpffs,
// cgroup v2, the ring buffer, systemd and systemd-sysext, dm-verity and
// erofs, the trusted keys, the installed policy, room for two slots and
// the clock. Each check gives OK, WARN or FAIL, what it saw, and the fix.
//
// Every file is read below Host.Root and every probe of the running kernel
// or file system is a field of Host, so the checks run unchanged against a
// fake /proc and /sys tree in tests, or against a mounted image. Nothing
// is written. `aegisbpf doctor` (agent/cli/doctor.go) is the command line.
package doctor
