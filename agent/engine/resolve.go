package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// FileRule is a file or exec rule in the form the engine resolves.
type FileRule struct {
	ID      string
	Path    string // absolute, clean
	Subtree bool   // the directory and everything below it
	Access  Access
	Audit   bool
	Scope   Scope
}

// Scope limits a rule to, or exempts, cgroups given as paths below the
// cgroup2 mount (e.g. "/system.slice/foo.service").
type Scope struct {
	Mode    ScopeMode
	Cgroups []string
}

// Spec is the input to Resolve.
type Spec struct {
	Rules []FileRule
	// Enforce denies unresolvable objects (see RuleSet.DenyUnresolved).
	Enforce bool
	// CgroupRoot is where cgroup2 is mounted; default /sys/fs/cgroup.
	CgroupRoot string
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
func (rs *RuleSet) protectHardlinks(w linkScanner, ref uint32, r FileRule) []string {
	sts, complete, err := w.MultiLinked(r.Path, MaxSubtreeScan)
	var warn []string
	if err != nil {
		warn = append(warn, fmt.Sprintf("rule %s: scanning %s for hard links: %v", r.ID, r.Path, err))
	}
	if !complete {
		warn = append(warn, fmt.Sprintf("rule %s: %s has more than %d entries: hard links beyond them made before the policy loaded are not covered", r.ID, r.Path, MaxSubtreeScan))
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
	var errs []error
	for i, r := range spec.Rules {
		ref := uint32(i + 1)
		rule := Rule{ID: r.ID, Audit: r.Audit, Scope: r.Scope.Mode}
		if r.Scope.Mode != ScopeAll {
			rule.ScopeID = ref
			for _, cg := range r.Scope.Cgroups {
				var st unix.Stat_t
				p := filepath.Join(cgRoot, cg)
				if err := fsys.Stat(p, &st); err != nil {
					// A cgroup that does not exist yet cannot hold a task.
					rs.Warnings = append(rs.Warnings, fmt.Sprintf("rule %s: cgroup %s does not exist (yet): %v", r.ID, cg, err))
					continue
				}
				rs.Scopes = append(rs.Scopes, bpf.AegisScopeKey{CgroupId: st.Ino, ScopeId: ref})
			}
		}
		rs.Rules = append(rs.Rules, rule)
	}
	for i, r := range spec.Rules {
		if err := rs.resolveFile(uint32(i+1), r, fsys); err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

func (rs *RuleSet) resolveFile(ref uint32, r FileRule, fsys Statter) error {
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
				rs.Warnings = append(rs.Warnings, rs.protectHardlinks(w, ref, r)...)
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
		rs.Warnings = append(rs.Warnings, fmt.Sprintf("rule %s: directory %s: %v: protected by inode only", r.ID, parent, err))
		return nil
	}
	if !exists {
		rs.Warnings = append(rs.Warnings, fmt.Sprintf("rule %s: %s does not exist yet: protected by name", r.ID, r.Path))
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
