package doctor

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/agent/slot"
)

const (
	mountsFile = "/proc/mounts"
	cgroupRoot = "/sys/fs/cgroup"
)

// mount is one line of /proc/mounts.
type mount struct {
	source, point, fstype string
	options               []string
}

// mounts parses the host's mount table, in mount order.
func (h *Host) mounts() ([]mount, error) {
	data, err := h.readFile(mountsFile)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	var out []mount
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		out = append(out, mount{source: slot.UnescapeMount(f[0]), point: slot.UnescapeMount(f[1]), fstype: f[2],
			options: strings.Split(f[3], ",")})
	}
	return out, nil
}

// at returns the mount on top at point, if any.
func at(ms []mount, point string) (mount, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].point == point {
			return ms[i], true
		}
	}
	return mount{}, false
}

// containing returns the mount that holds path: the last mounted of those
// whose mount point is path or one of its ancestors.
func containing(ms []mount, path string) (mount, bool) {
	best, found := mount{}, false
	for _, m := range ms {
		if m.point == "/" || m.point == path || strings.HasPrefix(path, strings.TrimSuffix(m.point, "/")+"/") {
			if !found || len(m.point) >= len(best.point) {
				best, found = m, true
			}
		}
	}
	return best, found
}

func (h *Host) checkBPFFS() Result {
	const name = "bpffs"
	bpffs := filepath.Dir(engine.DefaultRoot)
	fix := fmt.Sprintf("mount -t bpf bpf %s (systemd mounts it at boot as sys-fs-bpf.mount)", bpffs)
	ms, err := h.mounts()
	if err != nil {
		return fail(name, fix, "%v", err)
	}
	m, found := at(ms, bpffs)
	switch {
	case found && m.fstype == "bpf":
		return ok(name, "bpf file system mounted at %s (the agent pins under %s)", bpffs, engine.DefaultRoot)
	case found:
		return fail(name, fix, "%s is a %s file system, not bpf", bpffs, m.fstype)
	}
	var elsewhere []string
	for _, m := range ms {
		if m.fstype == "bpf" {
			elsewhere = append(elsewhere, m.point)
		}
	}
	if len(elsewhere) > 0 {
		return fail(name, fix, "no bpf file system at %s (mounted at %s)", bpffs, strings.Join(elsewhere, ", "))
	}
	return fail(name, fix, "no bpf file system mounted at %s", bpffs)
}

func (h *Host) checkCgroup2() Result {
	const name = "cgroup2"
	fix := "boot with cgroup v2 only: remove systemd.unified_cgroup_hierarchy=0 and systemd.legacy_systemd_cgroup_controller from the kernel command line " + grubFix
	ms, err := h.mounts()
	if err != nil {
		return fail(name, fix, "%v", err)
	}
	m, found := at(ms, cgroupRoot)
	switch {
	case found && m.fstype == "cgroup2":
		return ok(name, "cgroup v2 (unified hierarchy) at %s", cgroupRoot)
	case !found:
		return fail(name, "mount -t cgroup2 cgroup2 "+cgroupRoot+" (systemd does this at boot)", "nothing is mounted at %s", cgroupRoot)
	}
	i := slices.IndexFunc(ms, func(m mount) bool { return m.fstype == "cgroup2" })
	if i >= 0 {
		return fail(name, fix, "hybrid hierarchy: %s is %s, cgroup v2 is only at %s; the agent's scopes and identity need the unified hierarchy",
			cgroupRoot, m.fstype, ms[i].point)
	}
	return fail(name, fix, "%s is %s and there is no cgroup v2 mount", cgroupRoot, m.fstype)
}

// readOnly reports whether the mount holding path is read-only.
func readOnly(ms []mount, path string) (mount, bool) {
	m, found := containing(ms, path)
	return m, found && slices.Contains(m.options, "ro")
}
