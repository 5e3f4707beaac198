package bench

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// The real files bench_walk decides on, relative to Fixture.Dir.
const (
	fileFree     = "free/file"       // in no rule, parent not watched
	fileSibling  = "deny/other"      // in no rule, parent watched
	fileSecret   = "deny/secret"     // exact rule: inode and name
	fileReplaced = "deny/replaced"   // name rule only: as after a replacement
	fileDeep     = "tree/a/b/c/file" // under the subtree rule on tree
	dirTree      = "tree"            // subtree rule
)

// Rule indices of the real files' rules, after the synthetic ones.
const (
	ruleSecret = iota
	ruleReplaced
	ruleTree
	realRuleCount
)

// realRules is what the engine would write for the real files' rules,
// with rule indices counted from 0; shift moves them after the synthetic
// rules.
type realRules struct {
	rules   []struct{}
	inodes  map[bpf.BenchInodeKey]refs
	names   map[bpf.BenchNameKey]refs
	watched map[bpf.BenchInodeKey]struct{}
}

// refs protects every access kind by one rule index, for the object itself
// and, for a subtree, below it.
type refs struct {
	rule  int
	below bool
}

func (r refs) shift(n int) bpf.BenchRuleRef {
	var ref bpf.BenchRuleRef
	for k := range ref.Self {
		ref.Self[k] = uint32(n + r.rule + 1)
		if r.below {
			ref.Below[k] = uint32(n + r.rule + 1)
		}
	}
	return ref
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// makeFiles creates the file tree under f.Dir, opens the files bench_walk
// decides on, and records the rules on them as resolveFile would: an
// inode entry for an existing target, a name entry in its parent (which
// becomes watched), and its device in subtree_devs for a subtree.
func (f *Fixture) makeFiles() error {
	for _, p := range []string{fileFree, fileSibling, fileSecret, fileReplaced, fileDeep} {
		full := filepath.Join(f.Dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return fmt.Errorf("creating the file tree: %w", err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			return fmt.Errorf("creating the file tree: %w", err)
		}
		file, err := os.Open(full)
		if err != nil {
			return fmt.Errorf("opening %s: %w", full, err)
		}
		f.files[p] = file
	}
	stat := func(p string) (bpf.BenchInodeKey, error) {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(f.Dir, p), &st); err != nil {
			return bpf.BenchInodeKey{}, fmt.Errorf("resolving %s: %w", p, err)
		}
		return bpf.BenchInodeKey{Ino: st.Ino, Dev: bpf.KernelDev(st.Dev)}, nil
	}
	r := realRules{
		rules:   make([]struct{}, realRuleCount),
		inodes:  map[bpf.BenchInodeKey]refs{},
		names:   map[bpf.BenchNameKey]refs{},
		watched: map[bpf.BenchInodeKey]struct{}{},
	}
	for _, t := range []struct {
		path          string
		rule          int
		inode, subdir bool
	}{
		{fileSecret, ruleSecret, true, false},
		{fileReplaced, ruleReplaced, false, false},
		{dirTree, ruleTree, true, true},
	} {
		if t.inode {
			key, err := stat(t.path)
			if err != nil {
				return err
			}
			r.inodes[key] = refs{rule: t.rule, below: t.subdir}
		}
		parent, err := stat(filepath.Dir(t.path))
		if err != nil {
			return err
		}
		nk := bpf.BenchNameKey{ParentIno: parent.Ino, NameHash: nameHash(filepath.Base(t.path)), Dev: parent.Dev}
		r.names[nk] = refs{rule: t.rule, below: t.subdir}
		r.watched[parent] = struct{}{}
		f.realDev = parent.Dev
	}
	f.real = r
	return nil
}

// fsType names the file system holding dir.
func fsType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("magic %#x", st.Type)
}

// depth returns how many dentries a walk from the file at p up to its file
// system's root visits.
func (f *Fixture) depth(p string) (int, error) {
	full := filepath.Join(f.Dir, p)
	var st unix.Stat_t
	if err := unix.Stat(full, &st); err != nil {
		return 0, err
	}
	n := 1
	for d := full; d != "/"; d = filepath.Dir(d) {
		var pst unix.Stat_t
		if err := unix.Stat(filepath.Dir(d), &pst); err != nil {
			return 0, err
		}
		if pst.Dev != st.Dev {
			break
		}
		n++
	}
	return n, nil
}
