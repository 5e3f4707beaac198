package audit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCgroupTree(t *testing.T) {
	root := t.TempDir()
	ino := map[string]uint64{}
	for _, p := range []string{"", "system.slice", "system.slice/ssh.service", "system.slice/system-serial\\x2dgetty.slice",
		"user.slice/user-1000.slice/session-3.scope", "kubepods/pod1/ctr"} {
		dir := filepath.Join(root, p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		ino["/"+p] = st.Ino
	}
	// Files of a cgroup directory are not cgroups.
	if err := os.WriteFile(filepath.Join(root, "system.slice", "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tree := NewCgroupTree(root)
	for _, tc := range []struct {
		path, unit, str string
	}{
		{"/", "", "/"},
		{"/system.slice", "system.slice", "/system.slice (system.slice)"},
		{"/system.slice/ssh.service", "ssh.service", "/system.slice/ssh.service (ssh.service)"},
		{"/system.slice/system-serial\\x2dgetty.slice", "system-serial\\x2dgetty.slice", "/system.slice/system-serial\\x2dgetty.slice (system-serial\\x2dgetty.slice)"},
		{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope", "/user.slice/user-1000.slice/session-3.scope (session-3.scope)"},
		{"/kubepods/pod1/ctr", "", "/kubepods/pod1/ctr"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			c := resolveCgroup(tree, ino[tc.path])
			if c.State != CgroupResolved || c.Path != tc.path || c.Unit != tc.unit || c.String() != tc.str {
				t.Errorf("resolved %d to %+v (%q)", ino[tc.path], c, c.String())
			}
		})
	}
	gone := uint64(1<<62 + 7)
	if c := resolveCgroup(tree, gone); c.State != CgroupGone || c.String() != "id 4611686018427387911 (gone)" {
		t.Errorf("gone: %+v %q", c, c)
	}
	if c := resolveCgroup(tree, 0); c.State != CgroupUnknown {
		t.Errorf("id 0: %+v", c)
	}
	if c := resolveCgroup(nil, 42); c.State != CgroupUnresolved || c.String() != "id 42" {
		t.Errorf("no resolver: %+v", c)
	}
	if c := resolveCgroup(NewCgroupTree(filepath.Join(root, "missing")), ino["/"]); c.State != CgroupGone {
		t.Errorf("missing root: %+v", c)
	}
}
