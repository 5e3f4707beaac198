package loop

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop driver: %v", err)
	}
}

func TestAttachReadOnly(t *testing.T) {
	requireLoop(t)
	want := bytes.Repeat([]byte("aegisbpf"), 4096/8*3)
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Attach(path)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	base := filepath.Base(d.Path)

	got, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatalf("reading %s: %v", d.Path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %d bytes that differ from the file's %d", d.Path, len(got), len(want))
	}
	ro, err := os.ReadFile("/sys/block/" + base + "/ro")
	if err != nil || strings.TrimSpace(string(ro)) != "1" {
		t.Errorf("/sys/block/%s/ro = %q, %v; want 1", base, ro, err)
	}
	f, err := os.OpenFile(d.Path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("x"))
		f.Close()
	}
	if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		t.Errorf("writing %s: got %v, want EROFS, EPERM or EACCES", d.Path, err)
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Autoclear: the backing file goes away once the last holder closes.
	backing := "/sys/block/" + base + "/loop/backing_file"
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(backing); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still attached 5s after Close", d.Path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAttachMissingFile(t *testing.T) {
	_, err := Attach(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Attach of a missing file: got %v, want ErrNotExist", err)
	}
}
