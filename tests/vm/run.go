package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CmdlineLSM is the LSM list the guest boots with.
const CmdlineLSM = "lsm=lockdown,capability,landlock,bpf"

// TestBinary is a static `go test -c` binary to run in the guest.
type TestBinary struct {
	Name string   // guest file /tests/NAME.test
	Path string   // host path
	Args []string // extra flags, e.g. -test.run=^TestVM
}

// Job is one boot of one kernel.
type Job struct {
	Tests        []TestBinary
	Modules      []string          // kernel modules to load, with their dependencies
	HostBinaries []string          // host programs to copy with their libraries
	Trees        map[string]string // guest path -> host directory to copy
	Env          map[string]string // extra environment for the tests
	Timeout      time.Duration     // hard limit for the whole boot
	MemoryMB     int
	Accel        string // "tcg" or "kvm"
}

// BinaryResult is what one test binary did in the guest.
type BinaryResult struct {
	Name                    string
	ExitCode                int // -1 if it never finished
	Passed, Failed, Skipped []string
}

// Result is what one boot did.
type Result struct {
	Kernel   *Kernel
	Booted   bool
	LSM      string
	Done     bool
	Binaries []*BinaryResult
	Problems []string // module load failures and the like
	// Filtered is set when a -run filter may leave a binary with no test;
	// then only the total across binaries must be non-zero.
	Filtered bool
	Elapsed  time.Duration
}

// Err summarizes why the boot failed, or returns nil. A boot fails when the
// guest did not boot or finish, bpf is not an active LSM, a module failed to
// load, a binary exited non-zero or ran zero tests, or any test failed or
// skipped (a skip inside the VM means the guest lacks what the test needs).
func (r *Result) Err() error {
	var errs []error
	if !r.Booted {
		errs = append(errs, errors.New("the guest did not boot to its init"))
	}
	if r.Booted && !strings.Contains(","+r.LSM+",", ",bpf,") {
		errs = append(errs, fmt.Errorf("bpf is not an active LSM in the guest (lsm=%s)", r.LSM))
	}
	for _, p := range r.Problems {
		errs = append(errs, errors.New(p))
	}
	for _, b := range r.Binaries {
		switch {
		case b.ExitCode == -1:
			errs = append(errs, fmt.Errorf("%s did not finish", b.Name))
		case b.ExitCode != 0:
			errs = append(errs, fmt.Errorf("%s exited %d", b.Name, b.ExitCode))
		}
		if len(b.Failed) > 0 {
			errs = append(errs, fmt.Errorf("%s: failed: %s", b.Name, strings.Join(b.Failed, ", ")))
		}
		if len(b.Skipped) > 0 {
			errs = append(errs, fmt.Errorf("%s: skipped inside the VM: %s", b.Name, strings.Join(b.Skipped, ", ")))
		}
		if b.ExitCode == 0 && len(b.Passed) == 0 && !r.Filtered {
			errs = append(errs, fmt.Errorf("%s ran zero tests", b.Name))
		}
	}
	if r.Booted && !r.Done {
		errs = append(errs, errors.New("the guest did not reach the end of its init (timeout or crash)"))
	}
	return errors.Join(errs...)
}

// Run boots k with job and streams the console to out, each line prefixed
// with the kernel's name.
func Run(ctx context.Context, k *Kernel, job *Job, workDir string, out io.Writer) (*Result, error) {
	start := time.Now()
	rd := NewInitramfs()
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/sys/fs/bpf", "/etc"} {
		rd.Dir(d)
	}
	rd.HostFile("/bin/busybox", "/bin/busybox", 0o755)
	mods, err := rd.Modules(ctx, k, job.Modules)
	if err != nil {
		return nil, err
	}
	for _, b := range job.HostBinaries {
		if err := rd.HostBinary(ctx, b); err != nil {
			return nil, err
		}
	}
	for gp, hp := range job.Trees {
		if err := rd.HostTree(gp, hp); err != nil {
			return nil, fmt.Errorf("copying %s into the guest: %w", hp, err)
		}
	}
	for _, t := range job.Tests {
		rd.HostFile("/tests/"+t.Name+".test", t.Path, 0o755)
	}
	rd.Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	rd.Bytes("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	rd.Bytes("/init", 0o755, []byte(initScript(job, mods)))
	initrd := filepath.Join(workDir, "initramfs-"+k.Spec.Name+".cpio.gz")
	if err := rd.Write(initrd); err != nil {
		return nil, fmt.Errorf("writing the initramfs: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	mem := job.MemoryMB
	if mem == 0 {
		mem = 2048
	}
	accel := job.Accel
	if accel == "" {
		accel = "tcg"
	}
	args := []string{
		"-accel", accelArg(accel), "-cpu", "max", "-smp", "2", "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
		"-kernel", k.Vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=3 " + CmdlineLSM,
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	// Whatever happens next, the process group dies with this function.
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	res := &Result{Kernel: k}
	parseConsole(stdout, res, out, "["+k.Spec.Name+"] ")
	waitErr := cmd.Wait()
	res.Elapsed = time.Since(start)
	if ctx.Err() != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("the guest hit the %s timeout and was killed", job.Timeout))
	} else if waitErr != nil && !res.Done {
		res.Problems = append(res.Problems, fmt.Sprintf("qemu: %v", waitErr))
	}
	return res, nil
}

// parseConsole copies console lines to out and records the harness markers
// and go test results.
func parseConsole(r io.Reader, res *Result, out io.Writer, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur *BinaryResult
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(out, "%s%s\n", prefix, line)
		if i := strings.Index(line, Marker); i >= 0 {
			f := strings.Fields(line[i+len(Marker):])
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "boot":
				res.Booted = true
				for _, kv := range f[1:] {
					if v, ok := strings.CutPrefix(kv, "lsm="); ok {
						res.LSM = v
					}
				}
			case "module-failed":
				res.Problems = append(res.Problems, "loading module "+strings.Join(f[1:], " ")+" failed")
			case "begin":
				if len(f) > 1 {
					cur = &BinaryResult{Name: f[1], ExitCode: -1}
					res.Binaries = append(res.Binaries, cur)
				}
			case "end":
				if cur != nil && len(f) > 2 {
					if v, ok := strings.CutPrefix(f[2], "rc="); ok {
						cur.ExitCode, _ = strconv.Atoi(v)
					}
				}
				cur = nil
			case "done":
				res.Done = true
			}
			continue
		}
		if cur == nil {
			continue
		}
		// Top-level results only: subtests are indented.
		for _, kind := range []string{"--- PASS: ", "--- FAIL: ", "--- SKIP: "} {
			if rest, ok := strings.CutPrefix(line, kind); ok {
				name := rest
				if f := strings.Fields(rest); len(f) > 0 {
					name = f[0]
				}
				switch kind {
				case "--- PASS: ":
					cur.Passed = append(cur.Passed, name)
				case "--- FAIL: ":
					cur.Failed = append(cur.Failed, name)
				default:
					cur.Skipped = append(cur.Skipped, name)
				}
			}
		}
	}
}

// accelArg turns the accelerator name into qemu's -accel value. TCG runs
// single-threaded: with one host thread per vCPU (MTTCG), a vCPU can execute
// a stale translation of kernel text that another vCPU is live-patching
// (text_poke_bp while BPF trampolines attach), which oopses the guest on an
// int3 the kernel already removed. Round-robin TCG keeps -smp 2 semantics
// without that race.
func accelArg(accel string) string {
	if accel == "tcg" {
		return "tcg,thread=single"
	}
	return accel
}
