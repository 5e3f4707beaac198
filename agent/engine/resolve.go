package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/policy"
)

// RuleSpec is one rule: its id, mode and cgroup scope.
type RuleSpec struct {
	ID    string
	Audit bool
	// Only, when not empty, limits the rule to these cgroups (paths below
	// the cgroup2 mount, e.g. "/system.slice/foo.service") and below;
	// Except exempts those cgroups and below.
	Only, Except []string
}

// Target is one object a rule protects: a path (exact or subtree) or a
// literal inode.
type Target struct {
	Rule    uint32 // index into Spec.Rules
	Path    string // absolute, clean; empty for an inode target
	Subtree bool   // the directory and everything below it
	Inode   *bpf.AegisInodeKey
	Access  Access
}

// Protect is a policy-driven protection: enum aegis_protect in bpf/abi.h.
type Protect uint32

// Protections the engine enforces.
const (
	ProtectPtrace     Protect = 1 // ptrace of any process
	ProtectModuleLoad Protect = 2 // kernel module loading
)

// ProtectTarget is one protection a rule holds.
type ProtectTarget struct {
	Rule uint32 // index into Spec.Rules
	Kind Protect
}

// MaxProtectRules bounds the rules holding one protection.
const MaxProtectRules = 8

// Spec is the input to Resolve.
type Spec struct {
	Rules       []RuleSpec
	Targets     []Target
	Protections []ProtectTarget
	Nets        []NetTarget
	Agent       []AgentTarget
	// AgentCgroup is the agent's cgroup for the agent protection; empty
	// means the calling process's own (SelfCgroup).
	AgentCgroup string
	// Enforce denies unresolvable objects (see RuleSet.DenyUnresolved).
	Enforce bool
	// CgroupRoot is where cgroup2 is mounted; default /sys/fs/cgroup.
	CgroupRoot string
}

// FileRule is a one-target rule, a shorthand for tests and tools.
type FileRule struct {
	ID      string
	Path    string
	Subtree bool
	Access  Access
	Audit   bool
	Scope   Scope
}

// Scope limits a FileRule to, or exempts, cgroups given as paths.
type Scope struct {
	Mode    ScopeMode
	Cgroups []string
}

// FileRules builds a Spec with one rule per FileRule.
func FileRules(enforce bool, rules ...FileRule) Spec {
	spec := Spec{Enforce: enforce}
	for i, r := range rules {
		rs := RuleSpec{ID: r.ID, Audit: r.Audit}
		switch r.Scope.Mode {
		case ScopeOnly:
			rs.Only = r.Scope.Cgroups
		case ScopeExcept:
			rs.Except = r.Scope.Cgroups
		}
		spec.Rules = append(spec.Rules, rs)
		spec.Targets = append(spec.Targets, Target{Rule: uint32(i), Path: r.Path, Subtree: r.Subtree, Access: r.Access})
	}
	return spec
}

// Statter is the file system as Resolve sees it; tests may replace it.
type Statter interface {
	Stat(path string, st *unix.Stat_t) error
	Lstat(path string, st *unix.Stat_t) error
}

type hostFS struct{}

func (hostFS) Stat(p string, st *unix.Stat_t) error  { return unix.Stat(p, st) }
func (hostFS) Lstat(p string, st *unix.Stat_t) error { return unix.Lstat(p, st) }

// linkScanner finds the files below a directory that have more than one
// hard link.
type linkScanner interface {
	MultiLinked(dir string, limit int) (keys []unix.Stat_t, complete bool, err error)
}

func (hostFS) MultiLinked(dir string, limit int) ([]unix.Stat_t, bool, error) {
	var out []unix.Stat_t
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts are still covered by the walk in the kernel
		}
		if seen++; seen > limit {
			return fs.SkipAll
		}
		if !d.Type().IsRegular() {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && st.Nlink > 1 {
			out = append(out, st)
		}
		return nil
	})
	return out, seen <= limit, err
}

// MaxSubtreeScan bounds the files examined per subtree for hard links.
const MaxSubtreeScan = 1 << 20

// protectHardlinks adds the inode of every file in subtree r that has other
// hard links: a link made before the policy loaded may sit outside the
// subtree, where the ancestry walk would not pass the protected directory.
// (Links made afterwards are refused by the inode_link hook.)
func (rs *RuleSet) protectHardlinks(w linkScanner, ref uint32, id string, r Target) []string {
	sts, complete, err := w.MultiLinked(r.Path, MaxSubtreeScan)
	var warn []string
	if err != nil {
		warn = append(warn, fmt.Sprintf("rule %s: scanning %s for hard links: %v", id, r.Path, err))
	}
	if !complete {
		warn = append(warn, fmt.Sprintf("rule %s: %s has more than %d entries: hard links beyond them made before the policy loaded are not covered", id, r.Path, MaxSubtreeScan))
	}
	for i := range sts {
		rs.addInode(inodeKey(&sts[i]), ref, r.Access, true, false)
	}
	return warn
}

// HostFS resolves against the running system.
var HostFS Statter = hostFS{}

// NameHash is the FNV-1a 64 hash of a directory entry name, as the BPF side
// computes it (bpf/lib/decide.h).
func NameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

func inodeKey(st *unix.Stat_t) bpf.AegisInodeKey {
	return bpf.AegisInodeKey{Ino: st.Ino, Dev: bpf.KernelDev(st.Dev)}
}

// Resolve turns rules into map entries by looking paths up in fsys. For a
// path rule it protects: the object's inode (so hardlinks, bind mounts,
// other mount namespaces, chroots and /proc/self/fd reopens all match);
// the name in its parent directory (so an object re-created or renamed over
// the protected path matches); and, for a subtree, every descendant through
// the kernel's ancestry walk. The ancestors of a protected path are pinned:
// renaming or removing them is refused, so the path cannot be moved from
// under its rule. A path that does not exist yet is protected by name if its
// parent exists, else the rule is refused.
func Resolve(spec Spec, fsys Statter) (*RuleSet, error) {
	rs := newRuleSet()
	rs.DenyUnresolved = spec.Enforce
	cgRoot := spec.CgroupRoot
	if cgRoot == "" {
		cgRoot = "/sys/fs/cgroup"
	}
	// Scope ids: 2i+1 for rule i's Only list, 2i+2 for its Except list.
	// Cgroups are matched by path, so they need not exist yet.
	var errs []error
	addScope := func(r RuleSpec, id uint32, cgroups []string) {
		for _, cg := range cgroups {
			h, err := CgroupPathHash(cg)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, err))
				continue
			}
			rs.Scopes = append(rs.Scopes, bpf.AegisScopeKey{PathHash: h, ScopeId: id})
		}
	}
	for i, r := range spec.Rules {
		rule := Rule{ID: r.ID, Audit: r.Audit}
		if len(r.Only) > 0 {
			rule.Scope |= ScopeOnly
			rule.ScopeID = uint32(2*i + 1)
			addScope(r, rule.ScopeID, r.Only)
		}
		if len(r.Except) > 0 {
			rule.Scope |= ScopeExcept
			rule.ExemptID = uint32(2*i + 2)
			addScope(r, rule.ExemptID, r.Except)
		}
		rs.Rules = append(rs.Rules, rule)
	}
	for _, t := range spec.Targets {
		if int(t.Rule) >= len(spec.Rules) {
			errs = append(errs, fmt.Errorf("target %s names rule %d of %d", t.Path, t.Rule, len(spec.Rules)))
			continue
		}
		r := spec.Rules[t.Rule]
		ref := t.Rule + 1
		var err error
		if t.Inode != nil {
			if t.Access == 0 {
				err = errors.New("no access kind to deny")
			} else {
				rs.addInode(*t.Inode, ref, t.Access, true, false)
			}
		} else {
			err = rs.resolveFile(ref, r.ID, t, fsys)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, err))
		}
	}
	for _, p := range spec.Protections {
		if err := rs.addProtection(p, len(spec.Rules)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := rs.resolveNets(spec.Nets); err != nil {
		errs = append(errs, err)
	}
	if len(spec.Agent) > 0 {
		cg := spec.AgentCgroup
		var err error
		if cg == "" {
			cg, err = SelfCgroup()
		}
		if err == nil {
			err = rs.resolveAgent(spec.Agent, cg, cgRoot, fsys)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

// addProtection records that rule p.Rule holds protection p.Kind. The refs
// are kept enforcing-first, then by index, as the kernel folds them.
func (rs *RuleSet) addProtection(p ProtectTarget, nRules int) error {
	if int(p.Rule) >= nRules {
		return fmt.Errorf("protection %d names rule %d of %d", p.Kind, p.Rule, nRules)
	}
	id := rs.Rules[p.Rule].ID
	if p.Kind != ProtectPtrace && p.Kind != ProtectModuleLoad {
		return fmt.Errorf("rule %s: unknown protection %d", id, p.Kind)
	}
	refs := rs.Protections[p.Kind]
	ref := p.Rule + 1
	n := 0
	for n < len(refs.Ref) && refs.Ref[n] != 0 {
		if refs.Ref[n] == ref {
			return nil
		}
		n++
	}
	if n == len(refs.Ref) {
		return fmt.Errorf("rule %s: more than %d rules hold protection %d", id, MaxProtectRules, p.Kind)
	}
	refs.Ref[n] = ref
	list := refs.Ref[:n+1]
	sort.Slice(list, func(i, j int) bool { return rs.better(list[i], list[j]) })
	rs.Protections[p.Kind] = refs
	return nil
}

func (rs *RuleSet) resolveFile(ref uint32, id string, r Target, fsys Statter) error {
	if !filepath.IsAbs(r.Path) || filepath.Clean(r.Path) != r.Path {
		return fmt.Errorf("path %q is not absolute and clean", r.Path)
	}
	if r.Access == 0 {
		return errors.New("no access kind to deny")
	}
	var st unix.Stat_t
	exists := true
	if err := fsys.Stat(r.Path, &st); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("resolving %s: %w", r.Path, err)
		}
		exists = false
	}
	if exists {
		if r.Subtree && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("subtree %s is not a directory", r.Path)
		}
		key := inodeKey(&st)
		rs.addInode(key, ref, r.Access, true, r.Subtree)
		if r.Subtree {
			rs.SubtreeDevs[key.Dev] = struct{}{}
			if w, ok := fsys.(linkScanner); ok {
				rs.Warnings = append(rs.Warnings, rs.protectHardlinks(w, ref, id, r)...)
			}
		}
	}
	if r.Path == "/" {
		return nil
	}
	parent, base := filepath.Dir(r.Path), filepath.Base(r.Path)
	var pst unix.Stat_t
	if err := fsys.Stat(parent, &pst); err != nil {
		if !exists {
			return fmt.Errorf("neither %s nor its directory %s exists: nothing to protect it by", r.Path, parent)
		}
		rs.Warnings = append(rs.Warnings, fmt.Sprintf("rule %s: directory %s: %v: protected by inode only", id, parent, err))
		return nil
	}
	if !exists {
		rs.Warnings = append(rs.Warnings, fmt.Sprintf("rule %s: %s does not exist yet: protected by name", id, r.Path))
	}
	pkey := inodeKey(&pst)
	rs.addName(bpf.AegisNameKey{ParentIno: pkey.Ino, NameHash: NameHash(base), Dev: pkey.Dev}, ref, r.Access, true, r.Subtree)
	if r.Subtree {
		// A subtree re-created at the path is on the parent's file system.
		rs.SubtreeDevs[pkey.Dev] = struct{}{}
	}
	// Pin every ancestor directory below the root.
	for d := parent; d != "/"; d = filepath.Dir(d) {
		var ast unix.Stat_t
		if err := fsys.Lstat(d, &ast); err != nil {
			break
		}
		rs.pin(inodeKey(&ast), ref)
	}
	return nil
}

// Limits of cgroup scope paths (AEGIS_SCOPE_DEPTH, AEGIS_CGROUP_NAME_MAX
// less the NUL and one byte the kernel side needs to see a name end).
const (
	MaxScopeDepth = policy.MaxCgroupDepth
	MaxCgroupName = policy.MaxCgroupNameLen
)

// CgroupPathHash returns the key the kernel matches a scope's cgroup by:
// the FNV-1a 64 hash of its path below the cgroup2 root, e.g.
// "/system.slice/ssh.service". The path must be absolute and clean.
func CgroupPathHash(cg string) (uint64, error) {
	if cg == "/" || !strings.HasPrefix(cg, "/") || path.Clean(cg) != cg {
		return 0, fmt.Errorf("cgroup %q is not an absolute, clean path below the root", cg)
	}
	parts := strings.Split(cg[1:], "/")
	if len(parts) > MaxScopeDepth {
		return 0, fmt.Errorf("cgroup %s is %d levels deep, scopes reach %d", cg, len(parts), MaxScopeDepth)
	}
	for _, p := range parts {
		if len(p) > MaxCgroupName {
			return 0, fmt.Errorf("cgroup %s: name %.20q... is %d bytes, scopes match names of at most %d", cg, p, len(p), MaxCgroupName)
		}
	}
	return NameHash(cg), nil
}
