package engine

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// AgentTarget is a rule holding the agent protection: no signals (but from
// ExemptPIDs), ptrace, bpf() access or pin removal by other processes.
type AgentTarget struct {
	Rule       uint32 // index into Spec.Rules
	ExemptPIDs []uint32
}

// AgentGuard is the agent protection as the kernel holds it. The agent is
// every task in the cgroup named Cgroup; the kernel knows that cgroup by
// its parent's id and its name's hash, which survive systemd removing and
// re-creating the service's cgroup on a restart (docs/adr/0004).
type AgentGuard struct {
	Ref          uint32 // rule index + 1
	ExemptPIDs   []uint32
	Cgroup       string // below the cgroup2 mount, e.g. /system.slice/aegisbpf.service
	ParentCgroup uint64 // cgroup id (kernfs id) of Cgroup's parent
	NameHash     uint64
}

// cgroupNameLen is the part of a cgroup name the kernel hashes
// (AEGIS_CGROUP_NAME_LEN - 1 in bpf/lib/agent.h).
const cgroupNameLen = 63

// CgroupNameHash is the FNV-1a 64 hash of the first 63 bytes of a cgroup
// name, as the kernel computes it.
func CgroupNameHash(name string) uint64 {
	if len(name) > cgroupNameLen {
		name = name[:cgroupNameLen]
	}
	return NameHash(name)
}

// SelfCgroup returns the cgroup2 path of the calling process, from
// /proc/self/cgroup ("0::/system.slice/aegisbpf.service").
func SelfCgroup() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("reading own cgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading own cgroup: %w", err)
	}
	return "", errors.New("reading own cgroup: /proc/self/cgroup has no cgroup2 entry")
}

// resolveAgent fills rs.Agent from the agent targets: the strongest rule
// (enforcing first) decides, with its exempt PIDs. cgroup is the agent's
// cgroup path, cgRoot the cgroup2 mount.
func (rs *RuleSet) resolveAgent(targets []AgentTarget, cgroup, cgRoot string, fsys Statter) error {
	if len(targets) == 0 {
		return nil
	}
	best := targets[0]
	for _, t := range targets {
		if int(t.Rule) >= len(rs.Rules) {
			return fmt.Errorf("agent protection names rule %d of %d", t.Rule, len(rs.Rules))
		}
		if rs.better(t.Rule+1, best.Rule+1) {
			best = t
		}
	}
	id := rs.Rules[best.Rule].ID
	cgroup = path.Clean("/" + cgroup)
	if cgroup == "/" {
		return fmt.Errorf("rule %s: the agent runs in the root cgroup; protecting it needs a cgroup of its own (run it as a systemd service)", id)
	}
	var st unix.Stat_t
	parent := filepath.Join(cgRoot, path.Dir(cgroup))
	if err := fsys.Stat(parent, &st); err != nil {
		return fmt.Errorf("rule %s: resolving the agent's parent cgroup %s: %w", id, parent, err)
	}
	pids := slices.Clone(best.ExemptPIDs)
	slices.Sort(pids)
	rs.Agent = &AgentGuard{
		Ref:          best.Rule + 1,
		ExemptPIDs:   slices.Compact(pids),
		Cgroup:       cgroup,
		ParentCgroup: st.Ino,
		NameHash:     CgroupNameHash(path.Base(cgroup)),
	}
	return nil
}
