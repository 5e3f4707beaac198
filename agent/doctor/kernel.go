package doctor

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// Kernel interfaces read by the checks.
const (
	osReleaseFile = "/proc/sys/kernel/osrelease"
	cmdlineFile   = "/proc/cmdline"
	btfFile       = "/sys/kernel/btf/vmlinux"
	lsmFile       = "/sys/kernel/security/lsm"
)

// grubFix says where a kernel command line change goes.
const grubFix = "(Debian: GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot"

// release is a kernel release such as 6.12.0-26-amd64.
type release struct {
	raw          string
	major, minor int
}

var releaseRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

func (h *Host) release() (release, error) {
	raw, err := h.readFile(osReleaseFile)
	if err != nil {
		return release{}, fmt.Errorf("reading the kernel release: %w", err)
	}
	m := releaseRE.FindStringSubmatch(raw)
	if m == nil {
		return release{}, fmt.Errorf("kernel release %q does not start with MAJOR.MINOR", raw)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return release{raw: raw, major: major, minor: minor}, nil
}

func (r release) atLeast(major, minor int) bool {
	return r.major > major || (r.major == major && r.minor >= minor)
}

func (h *Host) checkKernel() Result {
	const name = "kernel"
	r, err := h.release()
	if err != nil {
		return fail(name, "run doctor on Linux with /proc mounted", "%v", err)
	}
	if !r.atLeast(MinKernelMajor, MinKernelMinor) {
		return fail(name, fmt.Sprintf("boot a %d.%d or later kernel (tested: Debian's 6.1 and 6.12)", MinKernelMajor, MinKernelMinor),
			"kernel %s is older than %d.%d", r.raw, MinKernelMajor, MinKernelMinor)
	}
	return ok(name, "kernel %s (%d.%d or later)", r.raw, MinKernelMajor, MinKernelMinor)
}

func (h *Host) checkBTF() Result {
	const name = "btf"
	fix := "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's kernels are)"
	fi, err := os.Stat(h.path(btfFile))
	switch {
	case err != nil:
		return fail(name, fix, "no kernel BTF: %v", err)
	case fi.Size() == 0:
		return fail(name, fix, "%s is empty", btfFile)
	}
	return ok(name, "%s present (%d bytes)", btfFile, fi.Size())
}

// cmdlineParam returns the value of the last name= on a kernel command
// line (the one the kernel uses) and whether there is one.
func cmdlineParam(cmdline, name string) (string, bool) {
	val, found := "", false
	for _, f := range strings.Fields(cmdline) {
		if f == "--" {
			break // what follows is for init
		}
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			val, found = strings.Trim(v, `"`), true
		}
	}
	return val, found
}

func hasLSM(list, lsm string) bool { return slices.Contains(strings.Split(list, ","), lsm) }

// lsmFix is the exact kernel command line change that makes bpf an active
// LSM: the lsm= list given on the command line, else the active list, with
// ",bpf" appended.
func lsmFix(cmdLSM string, cmdHas bool, active string) string {
	if cmdHas {
		return fmt.Sprintf("replace \"lsm=%s\" with \"lsm=%s,bpf\" on the kernel command line %s", cmdLSM, cmdLSM, grubFix)
	}
	return fmt.Sprintf("add \"lsm=%s,bpf\" to the kernel command line %s", active, grubFix)
}

func (h *Host) checkLSM() Result {
	const name = "lsm"
	cmdline, _ := h.readFile(cmdlineFile)
	cmdLSM, cmdHas := cmdlineParam(cmdline, "lsm")
	active, err := h.readFile(lsmFile)
	if err != nil {
		mount := "mount securityfs (mount -t securityfs securityfs /sys/kernel/security) and run doctor again"
		if cmdHas && hasLSM(cmdLSM, "bpf") {
			return warn(name, mount, "cannot read the active LSM list (%v); the kernel command line asks for lsm=%s", err, cmdLSM)
		}
		fix := mount + " to get the exact lsm= line"
		if cmdHas {
			fix = lsmFix(cmdLSM, true, "") + "; " + mount
		}
		return fail(name, fix, "cannot read the active LSM list (%v), and the kernel command line has no lsm= with bpf", err)
	}
	if hasLSM(active, "bpf") {
		return ok(name, "bpf is an active LSM (%s)", active)
	}
	return fail(name, lsmFix(cmdLSM, cmdHas, active), "bpf is not an active LSM (active: %s)", active)
}

// checkRingBuf probes the running kernel for the BPF ring buffer when it
// can (a probe needs CAP_BPF), and otherwise relies on the kernel version:
// the ring buffer came in 5.8.
func (h *Host) checkRingBuf() Result {
	const name = "ringbuf"
	fix := "boot a 5.8 or later kernel"
	why := "not probed: doctor does not run on this kernel"
	if h.ProbeRingBuf != nil {
		err := h.ProbeRingBuf()
		switch {
		case err == nil:
			return ok(name, "probed: the kernel created a BPF ring buffer map")
		case errors.Is(err, ebpf.ErrNotSupported):
			return fail(name, fix, "the kernel has no BPF ring buffer (probe: %v)", err)
		}
		why = fmt.Sprintf("not probed: %v", err)
	}
	r, err := h.release()
	if err != nil {
		return fail(name, fix, "%s; %v", why, err)
	}
	if !r.atLeast(5, 8) {
		return fail(name, fix, "kernel %s is older than 5.8 (%s)", r.raw, why)
	}
	return ok(name, "kernel %s is 5.8 or later (%s)", r.raw, why)
}

// checkLSMProgram loads a BPF LSM program, which is what the agent does
// first: bpf in the LSM list is necessary, not sufficient (lockdown, a
// sandbox or a kernel built without CONFIG_BPF_LSM refuse the load).
func (h *Host) checkLSMProgram() Result {
	const name = "lsm-program"
	err := h.ProbeLSM()
	switch {
	case err == nil:
		return ok(name, "probed: the kernel loaded a BPF LSM program")
	case !h.IsRoot():
		return warn(name, "run doctor as root", "not probed: loading a BPF LSM program needs root (%v)", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fail(name, "boot a kernel built with CONFIG_BPF_LSM=y and bpf in its lsm= list (see the lsm check)",
			"the kernel does not support BPF LSM programs (probe: %v)", err)
	}
	return fail(name, "find what refuses BPF as root: kernel lockdown in confidentiality mode, an LSM or seccomp filter "+
		"that restricts bpf(2), or a sandboxed kernel; the agent cannot enforce here",
		"the kernel refused to load a BPF LSM program as root: %v", err)
}
