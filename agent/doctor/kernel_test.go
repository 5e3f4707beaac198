package doctor

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestKernel(t *testing.T) {
	for _, c := range []struct {
		name, release string
		want          Status
		contains      []string
	}{
		{"6.12", "6.12.0-26-amd64", OK, []string{"6.12.0-26-amd64"}},
		{"6.1 exactly", "6.1.0-56-amd64", OK, nil},
		{"7.0", "7.0.1", OK, nil},
		{"5.15", "5.15.0-100-generic", Fail, []string{"older than 6.1", "boot a 6.1 or later kernel"}},
		{"garbage", "linux", Fail, []string{"does not start with MAJOR.MINOR"}},
		{"missing", "", Fail, []string{"reading the kernel release"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			if c.release == "" {
				f.remove("/proc/sys/kernel/osrelease")
			} else {
				f.write("/proc/sys/kernel/osrelease", c.release+"\n", 0o444)
			}
			expect(t, f.check("kernel"), c.want, c.contains...)
		})
	}
}

func TestBTF(t *testing.T) {
	t.Run("present", func(t *testing.T) {
		expect(t, newFakeHost(t).check("btf"), OK, "/sys/kernel/btf/vmlinux present")
	})
	t.Run("missing", func(t *testing.T) {
		f := newFakeHost(t)
		f.remove("/sys/kernel/btf")
		expect(t, f.check("btf"), Fail, "no kernel BTF", "CONFIG_DEBUG_INFO_BTF=y")
	})
	t.Run("empty", func(t *testing.T) {
		f := newFakeHost(t)
		f.write("/sys/kernel/btf/vmlinux", "", 0o444)
		expect(t, f.check("btf"), Fail, "is empty")
	})
}

func TestLSM(t *testing.T) {
	for _, c := range []struct {
		name, cmdline, active string // active "-": securityfs not mounted
		want                  Status
		contains              []string
	}{
		{"active", "ro lsm=" + goodLSM, goodLSM, OK, []string{"bpf is an active LSM"}},
		{"active by default", "ro", "capability,bpf", OK, nil},
		{"not active, no lsm=", "root=/dev/sda1 ro quiet", "capability,landlock,yama,apparmor", Fail,
			[]string{"bpf is not an active LSM (active: capability,landlock,yama,apparmor)",
				`add "lsm=capability,landlock,yama,apparmor,bpf" to the kernel command line`, "update-grub"}},
		{"not active, lsm= given", "ro lsm=landlock,apparmor", "capability,landlock,apparmor", Fail,
			[]string{`replace "lsm=landlock,apparmor" with "lsm=landlock,apparmor,bpf"`}},
		{"last lsm= wins", "lsm=bpf lsm=landlock", "capability,landlock", Fail,
			[]string{`replace "lsm=landlock" with "lsm=landlock,bpf"`}},
		{"lsm= after -- is init's", "ro -- lsm=bpf", "capability,yama", Fail,
			[]string{`add "lsm=capability,yama,bpf"`}},
		{"no securityfs, lsm= asks for bpf", "ro lsm=" + goodLSM, "-", Warn,
			[]string{"cannot read the active LSM list", "mount -t securityfs"}},
		{"no securityfs, no lsm=", "ro", "-", Fail,
			[]string{"no lsm= with bpf", "mount -t securityfs securityfs /sys/kernel/security"}},
		{"no securityfs, lsm= without bpf", "ro lsm=yama", "-", Fail,
			[]string{`replace "lsm=yama" with "lsm=yama,bpf"`, "mount -t securityfs"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.write("/proc/cmdline", c.cmdline+"\n", 0o444)
			if c.active == "-" {
				f.remove("/sys/kernel/security/lsm")
			} else {
				f.write("/sys/kernel/security/lsm", c.active, 0o444)
			}
			expect(t, f.check("lsm"), c.want, c.contains...)
		})
	}
}

func TestRingBuf(t *testing.T) {
	for _, c := range []struct {
		name     string
		probe    func() error
		release  string
		want     Status
		contains []string
	}{
		{"probed", func() error { return nil }, goodRelease, OK, []string{"probed"}},
		{"probe says unsupported", func() error { return fmt.Errorf("detect RingBuf: %w", ebpf.ErrNotSupported) }, goodRelease, Fail,
			[]string{"no BPF ring buffer"}},
		{"unprivileged: by version", func() error { return fmt.Errorf("detect RingBuf: %w", unix.EPERM) }, "6.1.0", OK,
			[]string{"5.8 or later", "not probed: detect RingBuf: operation not permitted"}},
		{"no probe: by version", nil, "5.10.0", OK, []string{"not probed"}},
		{"no probe, old kernel", nil, "5.4.0", Fail, []string{"older than 5.8"}},
		{"probe refused, old kernel", func() error { return errors.New("denied") }, "5.4.0", Fail, []string{"older than 5.8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.h.ProbeRingBuf = c.probe
			f.write("/proc/sys/kernel/osrelease", c.release, 0o444)
			expect(t, f.check("ringbuf"), c.want, c.contains...)
		})
	}
}

func TestLSMProgram(t *testing.T) {
	for _, c := range []struct {
		name     string
		probe    error
		root     bool
		want     Status
		contains []string
	}{
		{"loads", nil, true, OK, []string{"loaded a BPF LSM program"}},
		{"not root", unix.EPERM, false, Warn, []string{"not probed", "needs root"}},
		{"unsupported", fmt.Errorf("detect LSM: %w", ebpf.ErrNotSupported), true, Fail, []string{"does not support BPF LSM"}},
		{"refused as root", fmt.Errorf("detect support for LSM: load program: %w", unix.EPERM), true, Fail,
			[]string{"refused to load a BPF LSM program as root", "operation not permitted"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost(t)
			f.h.ProbeLSM = func() error { return c.probe }
			f.h.IsRoot = func() bool { return c.root }
			expect(t, f.check("lsm-program"), c.want, c.contains...)
		})
	}
	f := newFakeHost(t)
	for _, r := range f.h.Run() {
		if r.Name == "lsm-program" {
			t.Error("lsm-program ran without a probe (a --root other than /)")
		}
	}
}
