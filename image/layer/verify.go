package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aegisbpf/aegisbpf/image/tools"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Kinds of verification failure, for errors.Is. Every error from Verify
// and VerifyHashes matches one of them, except a failure to find or run
// veritysetup; a missing file also matches fs.ErrNotExist.
var (
	// ErrUntrusted: the signature is missing, unreadable, malformed, by a
	// key not in the ring, or does not match the manifest bytes.
	ErrUntrusted = errors.New("layer is not signed by a trusted key")
	// ErrMalformed: the signed manifest is not a valid manifest for its
	// file name.
	ErrMalformed = errors.New("layer manifest is malformed")
	// ErrCorrupt: an artifact is missing or differs from the manifest, or
	// the hash tree does not match the root hash.
	ErrCorrupt = errors.New("layer is corrupt")
)

// Layer is a verified layer on disk.
type Layer struct {
	Manifest      *Manifest
	KeyID         string // the trusted key that signed the manifest
	ManifestPath  string
	SignaturePath string
	ErofsPath     string
	VerityPath    string
}

// verifyError is a failure of one step; it matches its kind and the cause.
type verifyError struct {
	kind  error
	msg   string
	cause error
}

func (e *verifyError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *verifyError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func fail(kind, cause error, format string, args ...any) error {
	return &verifyError{kind: kind, msg: kind.Error() + ": " + fmt.Sprintf(format, args...), cause: cause}
}

// Verify checks the layer whose manifest is at manifestPath, in this order,
// and stops at the first step that fails:
//
//  1. the manifest's file name gives the version and the signature
//     sidecar's name (ManifestName, SignatureName); a missing sidecar is a
//     failure, never a reason to skip the check;
//  2. the sidecar parses, names a key in ring, and its Ed25519 signature
//     matches the manifest's exact bytes;
//  3. the manifest parses strictly, is canonical, valid, and its version
//     matches its file name; artifact names are plain file names;
//  4. each artifact beside it is a regular file with the manifest's size
//     and SHA-256 (all artifacts are checked and all differences reported);
//  5. the hash tree's superblock holds the manifest's verity parameters and
//     the file has the size such a tree has;
//  6. veritysetup verify: every data block matches the hash tree and the
//     tree matches the root hash.
//
// VerifyHashes does steps 1 to 5 without running any program.
func Verify(ctx context.Context, manifestPath string, ring keys.Ring) (*Layer, error) {
	l, err := VerifyHashes(manifestPath, ring)
	if err != nil {
		return nil, err
	}
	v, err := tools.FindVerity(ctx)
	if err != nil {
		return nil, fmt.Errorf("verifying layer %s: %w", manifestPath, err)
	}
	if err := v.Verify(ctx, l.ErofsPath, l.VerityPath, l.Manifest.Verity.RootHash); err != nil {
		if errors.Is(err, tools.ErrVerityMismatch) {
			return nil, fmt.Errorf("verifying layer %s: %w", manifestPath,
				fail(ErrCorrupt, err, "hash tree %s does not match %s and root hash %s", filepath.Base(l.VerityPath), filepath.Base(l.ErofsPath), l.Manifest.Verity.RootHash))
		}
		return nil, fmt.Errorf("verifying layer %s: %w", manifestPath, err)
	}
	return l, nil
}

// VerifyHashes does steps 1 to 5 of Verify: the signature, the manifest,
// the size and SHA-256 of each artifact, and the hash tree's parameters.
// It reads every byte of the artifacts but runs no program.
func VerifyHashes(manifestPath string, ring keys.Ring) (*Layer, error) {
	l, err := verifyHashes(manifestPath, ring)
	if err != nil {
		return nil, fmt.Errorf("verifying layer %s: %w", manifestPath, err)
	}
	return l, nil
}

func verifyHashes(manifestPath string, ring keys.Ring) (*Layer, error) {
	if len(ring) == 0 {
		return nil, fail(ErrUntrusted, nil, "no trusted keys")
	}
	// 1. Names.
	nameVersion, err := versionOfManifest(manifestPath)
	if err != nil {
		return nil, fail(ErrMalformed, err, "finding the signature sidecar")
	}
	sigPath, _ := SignaturePath(manifestPath)
	manifest, err := readLimited(manifestPath, maxManifestSize)
	if err != nil {
		kind := ErrMalformed
		if errors.Is(err, fs.ErrNotExist) {
			kind = ErrCorrupt
		}
		return nil, fail(kind, err, "reading manifest")
	}
	// 2. Signature, over the bytes as read, before anything trusts them.
	sidecar, err := readLimited(sigPath, maxSignatureSize)
	if err != nil {
		return nil, fail(ErrUntrusted, err, "reading signature sidecar %s (a layer without it is refused)", filepath.Base(sigPath))
	}
	keyID, err := checkSignature(ring, manifest, sidecar)
	if err != nil {
		return nil, fail(ErrUntrusted, err, "signature sidecar %s", filepath.Base(sigPath))
	}
	// 3. Manifest.
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, fail(ErrMalformed, err, "manifest %s (signed by trusted key %s)", filepath.Base(manifestPath), keyID)
	}
	if m.Version != nameVersion {
		return nil, fail(ErrMalformed, nil, "manifest file name says version %q, the manifest says %q", nameVersion, m.Version)
	}
	dir := filepath.Dir(manifestPath)
	l := &Layer{
		Manifest:      m,
		KeyID:         keyID,
		ManifestPath:  manifestPath,
		SignaturePath: sigPath,
		ErofsPath:     filepath.Join(dir, m.Erofs().Name),
		VerityPath:    filepath.Join(dir, m.VerityArtifact().Name),
	}
	// 4. Artifacts.
	var errs []error
	for _, a := range m.Artifacts {
		if err := checkArtifact(filepath.Join(dir, a.Name), a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// 5. Hash tree parameters.
	if err := checkVeritySuperblock(l.VerityPath, m); err != nil {
		return nil, err
	}
	return l, nil
}

// checkArtifact compares one artifact file with its manifest entry. The
// file is opened without following a symlink and without blocking on a
// FIFO, and checked to be a regular file through the open descriptor.
func checkArtifact(p string, a Artifact) error {
	f, err := openRegular(p, true)
	if err != nil {
		var nr *notRegularError
		if errors.As(err, &nr) {
			return fail(ErrCorrupt, nil, "artifact %s is a %s, not a regular file", a.Name, nr.kind)
		}
		return fail(ErrCorrupt, err, "artifact %s", a.Name)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(ErrCorrupt, err, "artifact %s", a.Name)
	}
	if fi.Size() != a.Size {
		return fail(ErrCorrupt, nil, "artifact %s has %d bytes, the manifest says %d", a.Name, fi.Size(), a.Size)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fail(ErrCorrupt, err, "reading artifact %s", a.Name)
	}
	if n != a.Size {
		return fail(ErrCorrupt, nil, "artifact %s changed size while being read", a.Name)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != a.SHA256 {
		return fail(ErrCorrupt, nil, "artifact %s has sha256 %s, the manifest says %s", a.Name, sum, a.SHA256)
	}
	return nil
}

// notRegularError is a path that is not a regular file.
type notRegularError struct{ kind string }

func (e *notRegularError) Error() string { return "not a regular file but a " + e.kind }

// openRegular opens p read-only without blocking (a FIFO would) and, when
// noFollow, without following a final symlink; anything but a regular file
// is a *notRegularError.
func openRegular(p string, noFollow bool) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if noFollow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(p, flags, 0)
	if err != nil {
		if noFollow && errors.Is(err, syscall.ELOOP) {
			return nil, &notRegularError{kind: "symlink"}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &notRegularError{kind: fileKind(fi.Mode())}
	}
	return f, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func checkVeritySuperblock(p string, m *Manifest) error {
	f, err := openRegular(p, true)
	if err != nil {
		return fail(ErrCorrupt, err, "hash tree")
	}
	defer f.Close()
	buf := make([]byte, sbSize)
	if _, err := io.ReadFull(f, buf); err != nil {
		return fail(ErrCorrupt, err, "reading hash tree superblock")
	}
	sb, err := parseVeritySuperblock(buf)
	if err != nil {
		return fail(ErrCorrupt, err, "hash tree %s", filepath.Base(p))
	}
	if err := sb.check(m.Verity, m.VerityArtifact().Size); err != nil {
		return fail(ErrCorrupt, err, "hash tree %s", filepath.Base(p))
	}
	return nil
}

// readLimited reads a regular file (following symlinks) of at most limit
// bytes.
func readLimited(p string, limit int64) ([]byte, error) {
	f, err := openRegular(p, false)
	if err != nil {
		var nr *notRegularError
		if errors.As(err, &nr) {
			return nil, fmt.Errorf("%s is a %s, not a regular file", p, nr.kind)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return data, nil
}
