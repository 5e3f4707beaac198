package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Check is one preflight check with an actionable error.
type Check struct {
	Name string
	Err  error
}

const bpfFSMagic = 0xcafe4a11

// Preflight checks that this kernel can enforce: BTF, bpf in the active LSM
// list, the LSM program type, the ring buffer, and a mounted bpffs at
// pinRoot's parent. It returns every check with its result.
func Preflight(bpffs string) []Check {
	var checks []Check
	add := func(name string, err error) { checks = append(checks, Check{Name: name, Err: err}) }

	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		add("btf", fmt.Errorf("kernel BTF missing (%v): boot a kernel built with CONFIG_DEBUG_INFO_BTF=y", err))
	} else {
		add("btf", nil)
	}
	add("lsm", checkLSMList())
	if err := features.HaveProgramType(ebpf.LSM); err != nil {
		add("lsm-program", fmt.Errorf("BPF LSM programs cannot be loaded: %w (needs CONFIG_BPF_LSM=y and root with CAP_BPF, CAP_SYS_ADMIN)", err))
	} else {
		add("lsm-program", nil)
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		add("ringbuf", fmt.Errorf("BPF ring buffer unsupported: %w (needs Linux 5.8 or later)", err))
	} else {
		add("ringbuf", nil)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(bpffs, &sfs); err != nil {
		add("bpffs", fmt.Errorf("bpffs at %s: %v (mount it: mount -t bpf bpf %s)", bpffs, err, bpffs))
	} else if uint32(sfs.Type) != bpfFSMagic {
		add("bpffs", fmt.Errorf("%s is not a bpf file system (mount it: mount -t bpf bpf %s)", bpffs, bpffs))
	} else {
		add("bpffs", nil)
	}
	return checks
}

func checkLSMList() error {
	data, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return fmt.Errorf("reading the active LSM list: %v (mount securityfs: mount -t securityfs securityfs /sys/kernel/security)", err)
	}
	list := strings.TrimSpace(string(data))
	for _, l := range strings.Split(list, ",") {
		if l == "bpf" {
			return nil
		}
	}
	return fmt.Errorf("bpf is not an active LSM (active: %s): add \"lsm=%s,bpf\" to the kernel command line and reboot", list, list)
}

// PreflightErr joins the failed checks of Preflight.
func PreflightErr(checks []Check) error {
	var errs []error
	for _, c := range checks {
		if c.Err != nil {
			errs = append(errs, fmt.Errorf("preflight %s: %w", c.Name, c.Err))
		}
	}
	return errors.Join(errs...)
}
