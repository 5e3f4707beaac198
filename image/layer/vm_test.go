package layer_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/loop"
	"github.com/aegisbpf/aegisbpf/image/tools"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

// LayerDirEnv names the directory the VM harness fills with a layer built
// on the host (aegisbpf_*.erofs, .verity, .manifest.json, .manifest.sig)
// and its trusted public key in keys/*.pub.
const LayerDirEnv = "AEGISBPF_TEST_LAYER_DIR"

// openLayer attaches data and hash files to loop devices, opens them as the
// dm-verity target name with rootHash, mounts it read-only as erofs, and
// undoes all of it at cleanup.
func openLayer(t *testing.T, v *tools.Verity, name, data, hash, rootHash string) string {
	t.Helper()
	ctx := context.Background()
	dataDev, err := loop.Attach(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dataDev.Close() })
	hashDev, err := loop.Attach(hash)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hashDev.Close() })
	if err := v.Open(ctx, name, dataDev.Path, hashDev.Path, rootHash); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(ctx, name); err != nil {
			t.Errorf("closing %s: %v", name, err)
		}
	})
	return mountErofs(t, "/dev/mapper/"+name)
}

// corruptDataByte copies the erofs image to dir and flips one byte inside
// the data of the file at path p of the layer (read from the intact mount
// good), away from the superblock and metadata. It returns the copy and
// the file offset of the flipped byte.
func corruptDataByte(t *testing.T, img, good, p, dir string) (string, int64) {
	t.Helper()
	file, err := os.ReadFile(filepath.Join(good, p))
	if err != nil {
		t.Fatal(err)
	}
	if len(file) < 4*4096 {
		t.Fatalf("%s has %d bytes: too small to hold a whole data block away from its tail", p, len(file))
	}
	image, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// A 64-byte probe from the middle of a whole block of the file, found
	// exactly once in the image, locates that block in the image.
	for off := int64(len(file)/2) &^ 4095; off+4096 <= int64(len(file)); off += 4096 {
		probe := file[off+512 : off+576]
		at := bytes.Index(image, probe)
		if at < 4096 || bytes.LastIndex(image, probe) != at {
			continue
		}
		image[at+10] ^= 0xff
		out := filepath.Join(dir, filepath.Base(img))
		if err := os.WriteFile(out, image, 0o644); err != nil {
			t.Fatal(err)
		}
		return out, off + 512 + 10
	}
	t.Fatalf("no block of %s could be located uniquely in %s", p, img)
	return "", 0
}

// TestVMLayerVerity opens a layer built on the host the way a hardened host
// does (verified manifest → loop → dm-verity with the signed root hash →
// read-only erofs), reads its files back, then does the same with a copy
// of the image with one flipped data byte and wants EIO and a corrupt
// verdict.
func TestVMLayerVerity(t *testing.T) {
	testenv.RequireVM(t)
	ctx := context.Background()
	dir := os.Getenv(LayerDirEnv)
	if dir == "" {
		t.Fatalf("%s is not set: the VM harness must build a layer on the host and copy it into the guest (see docs/IMAGE.md, \"Testing\")", LayerDirEnv)
	}
	ring, err := keys.LoadRing(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := layer.FindManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := layer.Verify(ctx, manifest, ring)
	if err != nil {
		t.Fatalf("the harness's layer does not verify: %v", err)
	}
	m := l.Manifest
	v, err := tools.FindVerity(ctx)
	if err != nil {
		t.Fatal(err)
	}

	good := openLayer(t, v, "aegisbpf-vmtest-good", l.ErofsPath, l.VerityPath, m.Verity.RootHash)
	policy, err := os.ReadFile(filepath.Join(good, layer.PolicyFile))
	if err != nil {
		t.Fatalf("reading the policy through dm-verity: %v", err)
	}
	if got := sha256Bytes(policy); got != m.PolicySHA256 {
		t.Errorf("policy read through dm-verity has sha256 %s, the manifest says %s", got, m.PolicySHA256)
	}
	checkTree(t, good, m)
	if st, err := v.Status(ctx, "aegisbpf-vmtest-good"); err != nil || !st.Active || st.Corrupted {
		t.Errorf("status of the intact layer: %+v, %v; want active and not corrupted", st, err)
	}

	// One flipped byte in the agent's data.
	bad, off := corruptDataByte(t, l.ErofsPath, good, layer.AgentFile, t.TempDir())
	if err := v.Verify(ctx, bad, l.VerityPath, m.Verity.RootHash); !errors.Is(err, tools.ErrVerityMismatch) {
		t.Errorf("veritysetup verify of the corrupt copy: %v, want a mismatch", err)
	}
	mnt := openLayer(t, v, "aegisbpf-vmtest-bad", bad, l.VerityPath, m.Verity.RootHash)
	f, err := os.Open(filepath.Join(mnt, layer.AgentFile))
	if err != nil {
		t.Fatalf("opening the agent in the corrupt layer: %v (the metadata should be intact)", err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	_, err = f.ReadAt(buf, off&^4095)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("reading the corrupted block of %s at offset %d: %v, want EIO", layer.AgentFile, off&^4095, err)
	}
	st, err := v.Status(ctx, "aegisbpf-vmtest-bad")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Corrupted {
		t.Errorf("dm-verity status after the failed read is not corrupted:\n%s", st.Raw)
	}
	t.Logf("dm-verity status of the corrupt layer:\n%s", st.Raw)

	// Verification of a layer directory holding the corrupt image.
	copyDir := t.TempDir()
	for _, p := range []string{l.ManifestPath, l.SignaturePath, l.VerityPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copyDir, filepath.Base(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(bad, filepath.Join(copyDir, filepath.Base(l.ErofsPath))); err != nil {
		t.Fatal(err)
	}
	_, err = layer.Verify(ctx, filepath.Join(copyDir, filepath.Base(l.ManifestPath)), ring)
	if !errors.Is(err, layer.ErrCorrupt) {
		t.Errorf("Verify of the corrupt layer: %v, want ErrCorrupt", err)
	}
}
