package audit

import (
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultCgroupRoot is where the cgroup v2 hierarchy is mounted.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// Cgroups resolves the cgroup id of an event (the cgroup v2 id, which is
// the inode number of the cgroup's directory) to its path below the
// cgroup root, as /proc/PID/cgroup prints it after "0::".
type Cgroups interface {
	Lookup(id uint64) (path string, ok bool)
}

// CgroupTree resolves cgroup ids by walking a cgroup v2 tree once, on the
// first Lookup. A directory that cannot be read is skipped. It is used by
// one goroutine at a time.
type CgroupTree struct {
	root string
	ids  map[uint64]string
}

// NewCgroupTree returns a resolver for the tree mounted at root.
func NewCgroupTree(root string) *CgroupTree { return &CgroupTree{root: root} }

// Lookup implements Cgroups.
func (t *CgroupTree) Lookup(id uint64) (string, bool) {
	if t.ids == nil {
		t.ids = t.walk()
	}
	p, ok := t.ids[id]
	return p, ok
}

func (t *CgroupTree) walk() map[uint64]string {
	ids := map[uint64]string{}
	_ = filepath.WalkDir(t.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && p != t.root {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(t.root, p)
		if err != nil {
			return nil
		}
		ids[st.Ino] = path.Clean("/" + filepath.ToSlash(rel))
		return nil
	})
	return ids
}

// Cgroup is the cgroup of a group of events.
type Cgroup struct {
	ID uint64 `json:"id"`
	// Path is below the cgroup root ("/system.slice/ssh.service"); empty
	// when the id was not resolved.
	Path string `json:"path,omitempty"`
	// Unit is the systemd unit that owns the cgroup, when the path's last
	// element names one (.service, .scope, .slice).
	Unit string `json:"unit,omitempty"`
	// State is "resolved", "gone" (no cgroup has the id now), "unknown"
	// (the event carried no cgroup id) or "unresolved" (resolution off).
	State string `json:"state"`
}

// Cgroup states.
const (
	CgroupResolved   = "resolved"
	CgroupGone       = "gone"
	CgroupUnknown    = "unknown"
	CgroupUnresolved = "unresolved"
)

// resolveCgroup describes id; cg nil turns resolution off.
func resolveCgroup(cg Cgroups, id uint64) Cgroup {
	c := Cgroup{ID: id}
	switch {
	case id == 0:
		c.State = CgroupUnknown
	case cg == nil:
		c.State = CgroupUnresolved
	default:
		p, ok := cg.Lookup(id)
		if !ok {
			c.State = CgroupGone
			break
		}
		c.State, c.Path, c.Unit = CgroupResolved, p, unitOf(p)
	}
	return c
}

// unitOf returns the systemd unit a cgroup path's last element names.
func unitOf(p string) string {
	base := path.Base(p)
	for _, suf := range []string{".service", ".scope", ".slice"} {
		if strings.HasSuffix(base, suf) && len(base) > len(suf) {
			return base
		}
	}
	return ""
}

// String is the human form: the path and unit, "id N (gone)", or "id N".
func (c Cgroup) String() string {
	switch c.State {
	case CgroupResolved:
		if c.Unit != "" {
			return c.Path + " (" + c.Unit + ")"
		}
		return c.Path
	case CgroupGone:
		return "id " + strconv.FormatUint(c.ID, 10) + " (gone)"
	case CgroupUnknown:
		return "no cgroup id"
	}
	return "id " + strconv.FormatUint(c.ID, 10)
}
