package kernel

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
)

// TestFileDenyOverlay: a protected file in an overlayfs lower layer stays
// denied through the merged view, and a copy-up cannot produce an
// unprotected copy of it.
func TestFileDenyOverlay(t *testing.T) {
	e, dir := setup(t)
	lower := filepath.Join(dir, "lower")
	secret := filepath.Join(lower, "secret")
	subFile := filepath.Join(lower, "dir", "a")
	writeFile(t, secret, "s")
	writeFile(t, subFile, "a")
	writeFile(t, filepath.Join(lower, "public"), "p")
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, e, true,
		engine.FileRule{ID: "exact", Path: secret, Access: engine.AccessRead | engine.AccessWrite},
		engine.FileRule{ID: "subtree", Path: filepath.Join(lower, "dir"), Subtree: true, Access: engine.AccessRead | engine.AccessWrite},
	)
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mounting overlayfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })

	wantDenied(t, "read the secret through the overlay", openErr(filepath.Join(merged, "secret")))
	wantDenied(t, "read the subtree file through the overlay", openErr(filepath.Join(merged, "dir", "a")))
	wantAllowed(t, "read public through the overlay", openErr(filepath.Join(merged, "public")))

	// Copy-up: a metadata change copies the file into the upper layer,
	// which reads the lower file; that read is refused.
	chmodErr := os.Chmod(filepath.Join(merged, "secret"), 0o600)
	wantDenied(t, "copy-up of the secret", chmodErr)
	wantDenied(t, "read the secret through the overlay after the copy-up attempt", openErr(filepath.Join(merged, "secret")))
	if _, err := os.Stat(filepath.Join(upper, "secret")); err == nil {
		wantDenied(t, "read a copied-up secret in the upper layer", openErr(filepath.Join(upper, "secret")))
	}
	// Opening for write triggers a copy-up too.
	_, werr := os.OpenFile(filepath.Join(merged, "dir", "a"), os.O_WRONLY, 0)
	wantDenied(t, "open the subtree file for writing through the overlay", werr)
	wantDenied(t, "read the subtree file after the copy-up attempt", openErr(filepath.Join(merged, "dir", "a")))
}
