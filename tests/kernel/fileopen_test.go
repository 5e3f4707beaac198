package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

// TestFileOpenDeniesInode loads the minimal lsm/file_open program, puts one
// file's (dev, inode) in the deny map and checks that opening that file fails
// with EPERM while a sibling file still opens.
func TestFileOpenDeniesInode(t *testing.T) {
	testenv.RequireBPFLSM(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("removing memlock limit: %v", err)
	}

	dir := t.TempDir()
	denied := filepath.Join(dir, "secret")
	allowed := filepath.Join(dir, "public")
	for _, p := range []string{denied, allowed} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var objs bpf.FileObjects
	if err := bpf.LoadFileObjects(&objs, nil); err != nil {
		t.Fatalf("loading BPF objects: %v", err)
	}
	t.Cleanup(func() { objs.Close() })

	var st unix.Stat_t
	if err := unix.Stat(denied, &st); err != nil {
		t.Fatal(err)
	}
	if err := objs.DenyInodes.Put(bpf.InodeKeyOf(&st), bpf.FileInodeRule{Rule: 7}); err != nil {
		t.Fatalf("filling deny map: %v", err)
	}

	// Before attaching, the file opens.
	mustOpen(t, denied)

	l, err := link.AttachLSM(link.LSMOptions{Program: objs.AegisFileOpen})
	if err != nil {
		t.Fatalf("attaching lsm/file_open: %v", err)
	}
	t.Cleanup(func() { l.Close() })

	f, err := os.Open(denied)
	if err == nil {
		f.Close()
		t.Fatalf("open %s succeeded, want EPERM", denied)
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("open %s: %v, want EPERM", denied, err)
	}
	mustOpen(t, allowed)

	// Detaching restores access: the denial came from this program.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, denied)
}

func mustOpen(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v, want success", path, err)
	}
	f.Close()
}
