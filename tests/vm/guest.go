package vm

import (
	"fmt"
	"sort"
	"strings"
)

// Marker starts every line the guest init prints for the harness.
const Marker = "AEGISVM:"

// initScript returns the guest /init: mount the kernel filesystems, load
// modules, run each test binary as root and report its exit code, power off.
func initScript(job *Job, modules []string) string {
	var b strings.Builder
	b.WriteString(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up 2>/dev/null
`)
	for _, m := range modules {
		fmt.Fprintf(&b, "insmod %s || echo \"%s module-failed %s\"\n", m, Marker, m)
	}
	// PID 1 signals a process on a test's request (see PID1SignalFile):
	// the agent protection exempts PID 1, and only PID 1 can show it. Tests
	// run in the background so that the trap runs while init waits.
	fmt.Fprintf(&b, `pid1_signal() {
	read -r sig pid < %[1]s && kill -s "$sig" "$pid"
	echo $? > %[1]s.rc
}
trap pid1_signal USR1
`, PID1SignalFile)
	fmt.Fprintf(&b, "echo \"%s boot kernel=$(uname -r) lsm=$(cat /sys/kernel/security/lsm)\"\n", Marker)
	b.WriteString("export " + GuestEnvVar + "=1\n")
	keys := make([]string, 0, len(job.Env))
	for k := range job.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(job.Env[k]))
	}
	for _, t := range job.Tests {
		args := append([]string{"/tests/" + t.Name + ".test", "-test.v", "-test.count=1",
			fmt.Sprintf("-test.timeout=%ds", int(job.Timeout.Seconds()))}, t.Args...)
		for i := range args {
			args[i] = shellQuote(args[i])
		}
		fmt.Fprintf(&b, "echo \"%s begin %s\"\n", Marker, t.Name)
		fmt.Fprintf(&b, "(cd /tmp && %s) 2>&1 &\n", strings.Join(args, " "))
		// wait returns early when a trapped signal arrives: wait again
		// while the test still runs.
		b.WriteString("child=$!\nwhile :; do wait $child; rc=$?; kill -0 $child 2>/dev/null || break; done\n")
		fmt.Fprintf(&b, "echo \"%s end %s rc=$rc\"\n", Marker, t.Name)
	}
	fmt.Fprintf(&b, "echo \"%s done\"\n", Marker)
	b.WriteString("sync\npoweroff -f\n")
	return b.String()
}

// PID1SignalFile is where a test writes "SIG PID" before sending SIGUSR1
// to PID 1, which then sends signal SIG to PID and writes kill's exit
// status to the same path with ".rc" appended.
const PID1SignalFile = "/run/aegisbpf-pid1-signal"

// GuestEnvVar tells tests they run inside the guest (see tests/testenv).
const GuestEnvVar = "AEGISBPF_VM_GUEST"

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
