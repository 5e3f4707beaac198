package layer_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/image/loop"
	"golang.org/x/sys/unix"
)

// requireErofsMount skips unless this host can loop-mount an erofs image.
func requireErofsMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach a loop device and mount erofs")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("needs the loop driver: %v", err)
	}
	fsList, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(fsList), "\terofs\n") {
		t.Skip("needs erofs in /proc/filesystems (modprobe erofs)")
	}
}

// mountErofs mounts the erofs block device or file dev read-only on a new
// directory and unmounts it at cleanup.
func mountErofs(t *testing.T, dev string) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount(dev, mnt, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		t.Fatalf("mounting %s as erofs: %v", dev, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	return mnt
}

// checkTree compares a mounted layer with its manifest: the same regular
// files with their modes, sizes and sha256, directories 0755, everything
// owned by root with the manifest's timestamp, and nothing else.
func checkTree(t *testing.T, root string, m *layer.Manifest) {
	t.Helper()
	want := map[string]layer.File{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	seen := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want 0:0", rel, st.Uid, st.Gid)
		}
		if fi.ModTime().Unix() != m.SourceDateEpoch {
			t.Errorf("%s has mtime %d, want %d", rel, fi.ModTime().Unix(), m.SourceDateEpoch)
		}
		switch {
		case fi.IsDir():
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("directory %s has mode %04o, want 0755", rel, fi.Mode().Perm())
			}
		case fi.Mode().IsRegular():
			f, ok := want[rel]
			if !ok {
				t.Errorf("%s is in the image but not in the manifest", rel)
				return nil
			}
			seen++
			if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != f.Mode {
				t.Errorf("%s has mode %s, manifest says %s", rel, got, f.Mode)
			}
			if sum := sha256File(t, p); sum != f.SHA256 || fi.Size() != f.Size {
				t.Errorf("%s has %d bytes, sha256 %s; manifest says %d, %s", rel, fi.Size(), sum, f.Size, f.SHA256)
			}
		default:
			t.Errorf("%s is a %v, want only directories and regular files", rel, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	if seen != len(m.Files) {
		t.Errorf("found %d of the manifest's %d files in the image", seen, len(m.Files))
	}
}

// TestLayerContentsMounted loop-mounts a built image on this host (no
// dm-verity here: the VM test covers that) and compares it with the
// manifest.
func TestLayerContentsMounted(t *testing.T) {
	requireErofsMount(t)
	res, _ := buildLayer(t, layertest.Config{AgentSize: 3<<20 + 123})
	dev, err := loop.Attach(res.ErofsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	mnt := mountErofs(t, dev.Path)
	checkTree(t, mnt, res.Manifest)
	rel, err := os.ReadFile(filepath.Join(mnt, layer.ExtensionReleaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(rel), "ID=_any\nARCHITECTURE=x86-64\n") {
		t.Errorf("extension-release:\n%s", rel)
	}
}
