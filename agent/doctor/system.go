package doctor

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// sharedLibGlobs find systemd's private library, whose name carries the
// version on every distribution (Debian: /usr/lib/systemd, later
// /usr/lib/<triplet>/systemd; Fedora: /usr/lib64/systemd).
var sharedLibGlobs = []string{
	"/usr/lib/systemd/libsystemd-shared-*.so",
	"/usr/lib/*/systemd/libsystemd-shared-*.so",
	"/usr/lib64/systemd/libsystemd-shared-*.so",
}

var sharedLibRE = regexp.MustCompile(`^libsystemd-shared-(\d+)`)

// systemdVersion is the version of the installed systemd, 0 when no
// library names one.
func (h *Host) systemdVersion() int {
	v := 0
	for _, g := range sharedLibGlobs {
		matches, _ := filepath.Glob(h.path(g))
		for _, m := range matches {
			if sm := sharedLibRE.FindStringSubmatch(filepath.Base(m)); sm != nil {
				n, _ := strconv.Atoi(sm[1])
				v = max(v, n)
			}
		}
	}
	return v
}

func (h *Host) checkSystemd() Result {
	const name = "systemd"
	upgrade := fmt.Sprintf("upgrade to systemd %d or later (Debian 12 or later)", MinSystemd)
	if comm, err := h.readFile("/proc/1/comm"); err == nil && comm != "systemd" {
		return fail(name, "boot the host with systemd as init: the agent is a Type=notify unit with a watchdog, and the slots are systemd units",
			"PID 1 is %q, not systemd", comm)
	}
	v := h.systemdVersion()
	switch {
	case v == 0:
		return warn(name, fmt.Sprintf("check that 'systemctl --version' says %d or later", MinSystemd),
			"cannot tell the systemd version: no libsystemd-shared-*.so under /usr/lib")
	case v < MinSystemd:
		return fail(name, upgrade, "systemd %d is older than %d", v, MinSystemd)
	}
	return ok(name, "systemd %d (%d or later)", v, MinSystemd)
}

// findTool returns the host path of an executable named name in the
// usual directories, "" when there is none.
func (h *Host) findTool(name string) string {
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := path.Join(dir, name)
		fi, err := os.Stat(h.path(p))
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (h *Host) checkSysext() Result {
	const name = "sysext"
	p := h.findTool("systemd-sysext")
	if p == "" {
		return fail(name, fmt.Sprintf("install systemd %d or later with systemd-sysext (Debian 12: the systemd package)", MinSystemd),
			"systemd-sysext not found: the slots merge their layer with it")
	}
	return ok(name, "%s present", p)
}

// moduleState says how a kernel module is present.
type moduleState int

const (
	moduleMissing   moduleState = iota
	moduleAvailable             // a .ko in modules.dep, not loaded
	moduleLoaded
	moduleBuiltin
)

func (s moduleState) String() string {
	return [...]string{"missing", "available, not loaded", "loaded", "built in"}[s]
}

// module finds the kernel module name (dm_verity, erofs) in /sys/module,
// then in the running kernel's modules.builtin and modules.dep.
func (h *Host) module(name string, rel release) moduleState {
	if _, err := os.Stat(h.path("/sys/module/" + name)); err == nil {
		// Loadable modules have an initstate; built-in ones do not.
		if _, err := os.Stat(h.path("/sys/module/" + name + "/initstate")); err == nil {
			return moduleLoaded
		}
		return moduleBuiltin
	}
	if rel.raw == "" {
		return moduleMissing
	}
	for _, dir := range []string{"/usr/lib/modules", "/lib/modules"} {
		base := path.Join(dir, rel.raw)
		if listsModule(h.path(base+"/modules.builtin"), name) {
			return moduleBuiltin
		}
		if listsModule(h.path(base+"/modules.dep"), name) {
			return moduleAvailable
		}
	}
	return moduleMissing
}

// listsModule reports whether a modules.dep or modules.builtin file names
// module name: the first path on a line, whose base name up to ".ko" is
// the module's name with '-' for '_'.
func listsModule(file, name string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, _, _ := strings.Cut(sc.Text(), ":")
		base, _, found := strings.Cut(path.Base(strings.TrimSpace(p)), ".ko")
		if found && strings.ReplaceAll(base, "-", "_") == name {
			return true
		}
	}
	return false
}

// moduleWarnFix is the fix of a module that is available but not loaded.
func moduleWarnFix(name string) string {
	return fmt.Sprintf("load it at boot: echo %s > /etc/modules-load.d/aegisbpf.conf", name)
}

const moduleWarn = "it is loaded on first use, which a [[protect]] kind = \"module_load\" rule denies once the agent enforces"

func (h *Host) checkDMVerity() Result {
	const name = "dm-verity"
	rel, _ := h.release()
	state := h.module("dm_verity", rel)
	tool := h.findTool("veritysetup")
	var problems, fixes []string
	if state == moduleMissing {
		problems = append(problems, "the kernel has no dm_verity module")
		fixes = append(fixes, "boot a kernel with CONFIG_DM_VERITY (Debian's have it as a module)")
	}
	if tool == "" {
		problems = append(problems, "veritysetup not found")
		fixes = append(fixes, "apt-get install cryptsetup-bin")
	}
	if len(problems) > 0 {
		return fail(name, strings.Join(fixes, "; "), "%s: the slots open their layers with dm-verity", strings.Join(problems, "; "))
	}
	if state == moduleAvailable {
		return warn(name, moduleWarnFix("dm_verity"), "module dm_verity is available but not loaded: %s", moduleWarn)
	}
	return ok(name, "module dm_verity %s; %s present", state, tool)
}

func (h *Host) checkErofs() Result {
	const name = "erofs"
	if fss, err := h.readFile("/proc/filesystems"); err == nil {
		for _, line := range strings.Split(fss, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[len(f)-1] == "erofs" {
				return ok(name, "erofs is a registered file system (/proc/filesystems)")
			}
		}
	}
	rel, _ := h.release()
	switch state := h.module("erofs", rel); state {
	case moduleMissing:
		return fail(name, "boot a kernel with CONFIG_EROFS_FS (Debian's have it as a module)",
			"the kernel has no erofs file system: the slots' layers are erofs images")
	case moduleAvailable:
		return warn(name, moduleWarnFix("erofs"), "module erofs is available but not loaded: %s", moduleWarn)
	default:
		return ok(name, "module erofs %s", state)
	}
}
