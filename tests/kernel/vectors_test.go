package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
)

// protectedTree lays out dir/protected/{secret,public,dir/{a,sub/b}} and
// applies the exact rule on secret and the subtree rule on dir.
type protectedTree struct {
	root, secret, public, sub, subFile, deep string
}

func layoutTree(t *testing.T, dir string) protectedTree {
	t.Helper()
	p := protectedTree{root: filepath.Join(dir, "protected")}
	p.secret = filepath.Join(p.root, "secret")
	p.public = filepath.Join(p.root, "public")
	p.sub = filepath.Join(p.root, "dir")
	p.subFile = filepath.Join(p.sub, "a")
	p.deep = filepath.Join(p.sub, "sub", "b")
	for _, f := range []string{p.secret, p.public, p.subFile, p.deep} {
		writeFile(t, f, "content of "+f)
	}
	return p
}

func protectTree(t *testing.T, e *engine.Engine, p protectedTree, audit bool) *engine.Instance {
	t.Helper()
	return apply(t, e, true,
		engine.FileRule{ID: "exact", Path: p.secret, Access: engine.AccessRead | engine.AccessWrite, Audit: audit},
		engine.FileRule{ID: "subtree", Path: p.sub, Subtree: true, Access: engine.AccessRead | engine.AccessWrite, Audit: audit},
	)
}

// TestFileDenyEveryWayRound: the exact rule on protected/secret and the
// subtree rule on protected/dir hold however the object is reached, and the
// unprotected sibling stays readable through the same routes.
func TestFileDenyEveryWayRound(t *testing.T) {
	e, dir := setup(t)
	p := layoutTree(t, dir)
	// Hard links made before the policy loads, outside the protected paths.
	for name, target := range map[string]string{"exact": p.secret, "subtree": p.subFile, "subtree-deep": p.deep} {
		if err := os.Link(target, filepath.Join(dir, "hardlink-before-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	protectTree(t, e, p, false)

	targets := []struct{ name, path string }{
		{"exact", p.secret},
		{"subtree", p.subFile},
		{"subtree-deep", p.deep},
	}
	for _, tg := range targets {
		t.Run(tg.name+"/absolute", func(t *testing.T) {
			wantDenied(t, "open "+tg.path, openErr(tg.path))
		})
		t.Run(tg.name+"/relative", func(t *testing.T) {
			rel, err := filepath.Rel(dir, tg.path)
			if err != nil {
				t.Fatal(err)
			}
			wd, _ := os.Getwd()
			defer os.Chdir(wd)
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			wantDenied(t, "open "+rel, openErr(rel))
			wantDenied(t, "open ./protected/../"+rel, openErr("./protected/../"+rel))
		})
		t.Run(tg.name+"/symlink", func(t *testing.T) {
			link := filepath.Join(dir, "symlink-"+tg.name)
			if err := os.Symlink(tg.path, link); err != nil {
				t.Fatal(err)
			}
			wantDenied(t, "open via symlink", openErr(link))
		})
		t.Run(tg.name+"/hardlink-before", func(t *testing.T) {
			wantDenied(t, "open via a hard link made before the policy", openErr(filepath.Join(dir, "hardlink-before-"+tg.name)))
		})
		t.Run(tg.name+"/hardlink-after", func(t *testing.T) {
			// Making the link is refused: it would carry the object out
			// of its subtree. Were it made, opening it must still fail.
			link := filepath.Join(dir, "hardlink-after-"+tg.name)
			wantDenied(t, "link a protected file", os.Link(tg.path, link))
			if _, err := os.Lstat(link); err == nil {
				wantDenied(t, "open via hardlink", openErr(link))
			}
		})
		t.Run(tg.name+"/proc-self-fd", func(t *testing.T) {
			fd, err := unix.Open(tg.path, unix.O_PATH, 0)
			if err != nil {
				t.Fatalf("O_PATH open must succeed (no data access): %v", err)
			}
			defer unix.Close(fd)
			wantDenied(t, "reopen via /proc/self/fd", openErr(fmt.Sprintf("/proc/self/fd/%d", fd)))
		})
		t.Run(tg.name+"/mount-namespace", func(t *testing.T) {
			cmd := helper("open", tg.path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
			if got := status(t, cmd); got != 13 {
				t.Errorf("open in a new mount namespace: status %d, want 13 (EPERM)", got)
			}
		})
		t.Run(tg.name+"/chroot", func(t *testing.T) {
			rel, _ := filepath.Rel(dir, tg.path)
			if got := status(t, helper("chroot-open", dir, "/"+rel)); got != 13 {
				t.Errorf("open inside chroot %s: status %d, want 13 (EPERM)", dir, got)
			}
		})
	}
	t.Run("subtree/renamed-out", func(t *testing.T) {
		wantDenied(t, "move a subtree file out of the subtree", os.Rename(p.subFile, filepath.Join(dir, "carried-out")))
		wantDenied(t, "open it where it stayed", openErr(p.subFile))
	})
	t.Run("bind-mount-file", func(t *testing.T) {
		target := filepath.Join(dir, "bind-file")
		writeFile(t, target, "")
		mustMount(t, p.secret, target)
		wantDenied(t, "open bind mount of the file", openErr(target))
	})
	t.Run("bind-mount-dir", func(t *testing.T) {
		target := filepath.Join(dir, "bind-dir")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		mustMount(t, p.root, target)
		wantDenied(t, "open secret through a bind mount of its directory", openErr(filepath.Join(target, "secret")))
		wantDenied(t, "open subtree file through a bind mount", openErr(filepath.Join(target, "dir", "a")))
		wantAllowed(t, "open public through a bind mount", openErr(filepath.Join(target, "public")))
	})
	t.Run("created-after-policy", func(t *testing.T) {
		f := filepath.Join(p.sub, "sub", "new")
		// Creating it opens it for writing, which the subtree rule denies.
		err := os.WriteFile(f, []byte("x"), 0o644)
		wantDenied(t, "create a file in the subtree", err)
		wantDenied(t, "open the created file", openErr(f))
	})
	t.Run("renamed-over", func(t *testing.T) {
		repl := filepath.Join(p.root, "replacement")
		writeFile(t, repl, "attacker")
		err := os.Rename(repl, p.secret)
		wantDenied(t, "rename over the write-protected file", err)
		wantDenied(t, "open the protected path after the rename attempt", openErr(p.secret))
	})
	t.Run("renamed-away", func(t *testing.T) {
		err := os.Rename(p.secret, filepath.Join(p.root, "moved"))
		wantDenied(t, "rename the write-protected file away", err)
	})
	t.Run("parent-renamed", func(t *testing.T) {
		err := os.Rename(p.root, filepath.Join(dir, "protected-moved"))
		wantDenied(t, "rename the protected file's directory", err)
	})
	t.Run("allowed-stays-allowed", func(t *testing.T) {
		wantAllowed(t, "open public", openErr(p.public))
		wantAllowed(t, "list protected root", openErr(p.root))
		f, err := os.OpenFile(p.public, os.O_WRONLY|os.O_APPEND, 0)
		wantAllowed(t, "write public", err)
		if f != nil {
			f.Close()
		}
		wantAllowed(t, "open a file outside", openErr("/proc/self/status"))
	})
}

// TestFileDenyReplacedNameRecreated: a protected name whose object was
// removed while unprotected and re-created after the policy loaded is
// still denied through the name rule.
func TestFileDenyNameRecreated(t *testing.T) {
	e, dir := setup(t)
	path := filepath.Join(dir, "later")
	apply(t, e, true, engine.FileRule{ID: "later", Path: path, Access: engine.AccessRead})
	// The object does not exist at load time; creating it is a write, which
	// this read-only rule allows, but reading it back is denied.
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	wantDenied(t, "read the file created after the policy", openErr(path))
}

func mustMount(t *testing.T, src, dst string) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}
