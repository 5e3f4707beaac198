package kernel

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
)

const (
	busybox = "/bin/busybox"
	ldso    = "/lib64/ld-linux-x86-64.so.2"
	dynTrue = "/usr/bin/true" // dynamically linked, copied in by the harness
)

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// runErr runs argv and returns the start error or the exit error.
func runErr(argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	return cmd.Run()
}

func wantExecDenied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("%s: got %v, want EPERM at exec", what, err)
	}
}

// TestExecDenyEveryWayRound: an exec rule on a directory subtree and on an
// exact binary holds for direct exec, a symlink, a #! script whose
// interpreter is denied, the dynamic loader run by hand, and execveat on a
// descriptor; allowed binaries keep running.
func TestExecDenyEveryWayRound(t *testing.T) {
	e, dir := setup(t)
	denyDir := filepath.Join(dir, "noexec")
	exact := filepath.Join(dir, "bin", "denied-true")
	copyFile(t, busybox, filepath.Join(denyDir, "true"), 0o755)
	copyFile(t, busybox, filepath.Join(denyDir, "sh"), 0o755)
	copyFile(t, dynTrue, filepath.Join(denyDir, "dyn-true"), 0o755)
	copyFile(t, busybox, exact, 0o755)
	copyFile(t, busybox, filepath.Join(dir, "bin", "true"), 0o755)
	copyFile(t, dynTrue, filepath.Join(dir, "bin", "dyn-true"), 0o755)
	script := filepath.Join(dir, "bin", "script")
	if err := os.WriteFile(script, []byte("#!"+filepath.Join(denyDir, "sh")+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(denyDir, "true"), filepath.Join(dir, "bin", "link-to-denied")); err != nil {
		t.Fatal(err)
	}

	apply(t, e, true,
		engine.FileRule{ID: "noexec-dir", Path: denyDir, Subtree: true, Access: engine.AccessExec},
		engine.FileRule{ID: "noexec-file", Path: exact, Access: engine.AccessExec},
	)

	wantExecDenied(t, "exec from the denied subtree", runErr(filepath.Join(denyDir, "true")))
	wantExecDenied(t, "exec the denied file", runErr(exact))
	wantExecDenied(t, "exec through a symlink", runErr(filepath.Join(dir, "bin", "link-to-denied")))
	wantExecDenied(t, "exec a script whose interpreter is denied", runErr(script))
	if err := runErr(ldso, filepath.Join(denyDir, "dyn-true")); err == nil {
		t.Errorf("%s %s succeeded, want the loader's mmap refused", ldso, filepath.Join(denyDir, "dyn-true"))
	}
	if got := status(t, helper("execveat", filepath.Join(denyDir, "true"))); got != 13 {
		t.Errorf("execveat of the denied file: status %d, want 13 (EPERM)", got)
	}

	// Reading the denied binaries is still allowed: exec rules are not read rules.
	wantAllowed(t, "read a denied binary", openErr(filepath.Join(denyDir, "true")))
	// Allowed binaries run, directly, via the loader and via execveat.
	wantAllowed(t, "exec an allowed binary", runErr(filepath.Join(dir, "bin", "true")))
	wantAllowed(t, "exec an allowed dynamic binary", runErr(filepath.Join(dir, "bin", "dyn-true")))
	wantAllowed(t, "run an allowed binary through the loader", runErr(ldso, filepath.Join(dir, "bin", "dyn-true")))
	if got := status(t, helper("execveat", filepath.Join(dir, "bin", "true"))); got != 0 {
		t.Errorf("execveat of an allowed file: status %d, want 0", got)
	}
}

// TestExecDenyMprotect: mapping a denied binary readable and then making
// it executable is refused.
func TestExecDenyMprotect(t *testing.T) {
	e, dir := setup(t)
	denied := filepath.Join(dir, "noexec", "blob")
	copyFile(t, busybox, denied, 0o644)
	apply(t, e, true, engine.FileRule{ID: "noexec", Path: filepath.Dir(denied), Subtree: true, Access: engine.AccessExec})

	f, err := os.Open(denied)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE); !errors.Is(err, unix.EPERM) {
		t.Errorf("mmap PROT_EXEC of a denied file: %v, want EPERM", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap PROT_READ must work: %v", err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC); !errors.Is(err, unix.EPERM) {
		t.Errorf("mprotect PROT_EXEC of a denied mapping: %v, want EPERM", err)
	}
}
