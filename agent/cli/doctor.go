package cli

import (
	"context"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/aegisbpf/aegisbpf/agent/buildinfo"
	"github.com/aegisbpf/aegisbpf/agent/doctor"
)

// doctorCommand returns `aegisbpf doctor`, the phase-0 validation of a
// host (docs/ROLLOUT_PLAN.md).
func doctorCommand() *Command {
	return &Command{Name: "doctor", Summary: "check that this host can run the agent, with the fix for each problem", Run: runDoctor}
}

const doctorUsage = `aegisbpf doctor [--json] [--strict] [--root DIR] [--policy FILE] [--keys DIR]

Checks the kernel (6.1 or later, BTF, bpf in the active LSM list, that it
loads a BPF LSM program, the ring buffer), bpffs and cgroup v2, systemd (252 or later) and systemd-sysext,
dm-verity and erofs, the trusted keys, the installed policy and its
signature, free space for two slots, and the clock. Prints one line per
check: OK, WARN or FAIL, what it saw and the fix. Reads only; changes
nothing. Run it as root: the ring buffer probe and some files need it.

Exit status: 0 when no check failed (warnings do not count unless --strict),
1 when a check failed, or warned with --strict; 2 on a usage error.`

func runDoctor(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "doctor", doctorUsage)
	asJSON := fs.Bool("json", false, "print the checks as one JSON document")
	strict := fs.Bool("strict", false, "exit 1 on warnings too")
	root := fs.String("root", doctor.DefaultRoot, "check the host whose file system is at `DIR` (its /proc and /sys too); the ring buffer and BPF LSM are probed only for /")
	policyFile := fs.String("policy", defaultPolicyPath, "the installed policy `FILE` (its signature is FILE.sig), inside --root")
	keysDir := fs.String("keys", defaultTrustedKeys, "the trusted keys `DIR`, inside --root")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return Usagef("doctor takes no arguments")
	}
	h := doctor.Host{Root: *root, PolicyFile: *policyFile, KeysDir: *keysDir}
	if t, ok := buildinfo.CommitTime(); ok {
		h.BuildTime = t
	}
	if *root == doctor.DefaultRoot {
		h.ProbeRingBuf = func() error { return features.HaveMapType(ebpf.RingBuf) }
		h.ProbeLSM = func() error { return features.HaveProgramType(ebpf.LSM) }
	}
	results := h.Run()
	report := doctor.NewReport(*root, results)
	var err error
	if *asJSON {
		err = report.WriteJSON(env.Stdout)
	} else {
		err = report.WriteText(env.Stdout)
	}
	if err != nil {
		return err
	}
	return doctorErr(report, *strict)
}

// doctorErr is the error, hence the exit status, of a report: failed
// checks fail, and so do warnings when strict.
func doctorErr(r doctor.Report, strict bool) error {
	switch {
	case r.Fail > 0:
		return fmt.Errorf("doctor: %d %s failed", r.Fail, plural(r.Fail, "check"))
	case strict && r.Warn > 0:
		return fmt.Errorf("doctor: %d %s warned (--strict)", r.Warn, plural(r.Warn, "check"))
	}
	return nil
}
