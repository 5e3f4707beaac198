package tools

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// minVerity is the oldest veritysetup accepted: 2.3 has every option and
// action used here (format with --uuid and --salt, verify, open, close,
// status) with the argument order below.
var minVerity = Version{2, 3, 0}

var verityVersionRE = regexp.MustCompile(`veritysetup (\d+)\.(\d+)(?:\.(\d+))?`)

// ErrVerityMismatch is wrapped by Verify when the data or the hash tree
// does not match the root hash.
var ErrVerityMismatch = errors.New("dm-verity hash tree does not match the data and root hash")

// Verity is a located veritysetup.
type Verity struct{ p program }

// FindVerity locates veritysetup on PATH and checks its version.
func FindVerity(ctx context.Context) (*Verity, error) {
	p, err := find(ctx, "veritysetup", "cryptsetup-bin", verityVersionRE, minVerity, "--version")
	if err != nil {
		return nil, err
	}
	return &Verity{p: p}, nil
}

// Path is the program's absolute path.
func (v *Verity) Path() string { return v.p.path }

// Version is the program's version.
func (v *Verity) Version() Version { return v.p.version }

// VerityParams are the hash tree parameters chosen at format time.
type VerityParams struct {
	HashAlgorithm string // e.g. "sha256"
	DataBlockSize int
	HashBlockSize int
	Salt          string // hex
	UUID          string // canonical 8-4-4-4-12 form, stored in the hash file's superblock
}

var (
	hexRE      = regexp.MustCompile(`^[0-9a-f]+$`)
	algRE      = regexp.MustCompile(`^[a-z0-9]+$`)
	rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)\s*$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

func (p VerityParams) check() error {
	switch {
	case !algRE.MatchString(p.HashAlgorithm):
		return fmt.Errorf("hash algorithm %q is not a plain name", p.HashAlgorithm)
	case !validBlockSize(p.DataBlockSize):
		return fmt.Errorf("data block size %d is not a power of two from 512 to 65536", p.DataBlockSize)
	case !validBlockSize(p.HashBlockSize):
		return fmt.Errorf("hash block size %d is not a power of two from 512 to 65536", p.HashBlockSize)
	case !hexRE.MatchString(p.Salt) || len(p.Salt)%2 != 0 || len(p.Salt) > 512:
		return fmt.Errorf("salt %q is not 1 to 256 bytes of lower-case hex", p.Salt)
	case !uuidRE.MatchString(p.UUID):
		return fmt.Errorf("UUID %q is not in lower-case 8-4-4-4-12 form", p.UUID)
	}
	return nil
}

func validBlockSize(n int) bool { return n >= 512 && n <= 65536 && n&(n-1) == 0 }

// Format writes the hash tree of the data file into the hash file (with a
// verity superblock at its start) and returns the root hash in hex. The
// output depends only on the data and p.
func (v *Verity) Format(ctx context.Context, data, hash string, p VerityParams) (string, error) {
	if err := p.check(); err != nil {
		return "", fmt.Errorf("formatting dm-verity hash tree: %w", err)
	}
	out, err := run(ctx, nil, v.p.path, "format",
		"--format=1",
		"--hash="+p.HashAlgorithm,
		"--data-block-size="+strconv.Itoa(p.DataBlockSize),
		"--hash-block-size="+strconv.Itoa(p.HashBlockSize),
		"--salt="+p.Salt,
		"--uuid="+p.UUID,
		data, hash)
	if err != nil {
		return "", fmt.Errorf("formatting dm-verity hash tree %s: %w", hash, err)
	}
	m := rootHashRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("formatting dm-verity hash tree %s: no \"Root hash:\" line in the output of %s",
			hash, CommandLine([]string{v.p.path, "format"}))
	}
	return string(m[1]), nil
}

func checkRootHash(rootHash string) error {
	if !hexRE.MatchString(rootHash) || len(rootHash)%2 != 0 {
		return fmt.Errorf("root hash %q is not lower-case hex", rootHash)
	}
	return nil
}

// Verify checks every block of the data file against the hash tree and the
// tree against rootHash, in user space (no device mapper). A mismatch
// wraps ErrVerityMismatch.
func (v *Verity) Verify(ctx context.Context, data, hash, rootHash string) error {
	if err := checkRootHash(rootHash); err != nil {
		return fmt.Errorf("verifying dm-verity hash tree: %w", err)
	}
	_, err := run(ctx, nil, v.p.path, "verify", data, hash, rootHash)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Verification") && strings.Contains(ce.Stderr, "failed") {
			return fmt.Errorf("verifying %s with %s: %w: %w", data, hash, ErrVerityMismatch, err)
		}
		return fmt.Errorf("verifying %s with %s: %w", data, hash, err)
	}
	return nil
}

// Open creates the read-only device-mapper target /dev/mapper/<name> over
// the data device, checked block by block against the hash tree and
// rootHash by the kernel. It needs root and the dm-verity module.
func (v *Verity) Open(ctx context.Context, name, data, hash, rootHash string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("opening dm-verity device: name %q is not a plain name", name)
	}
	if err := checkRootHash(rootHash); err != nil {
		return fmt.Errorf("opening dm-verity device %s: %w", name, err)
	}
	if _, err := run(ctx, nil, v.p.path, "open", data, name, hash, rootHash); err != nil {
		return fmt.Errorf("opening dm-verity device %s: %w", name, err)
	}
	return nil
}

// Close removes the device-mapper target made by Open.
func (v *Verity) Close(ctx context.Context, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("closing dm-verity device: name %q is not a plain name", name)
	}
	if _, err := run(ctx, nil, v.p.path, "close", name); err != nil {
		return fmt.Errorf("closing dm-verity device %s: %w", name, err)
	}
	return nil
}

// VerityStatus is what the kernel reports about an open verity target.
type VerityStatus struct {
	Active    bool
	Corrupted bool   // the kernel has seen a block that does not match
	Raw       string // the program's output, for messages
}

var statusRE = regexp.MustCompile(`(?m)^\s*status:\s+(\S+)`)

// Status reports whether the target is active and whether the kernel has
// found a corrupted block in it.
func (v *Verity) Status(ctx context.Context, name string) (VerityStatus, error) {
	if !nameRE.MatchString(name) {
		return VerityStatus{}, fmt.Errorf("reading dm-verity status: name %q is not a plain name", name)
	}
	out, err := run(ctx, nil, v.p.path, "status", name)
	var ce *CommandError
	if err != nil && errors.As(err, &ce) && strings.Contains(string(out), "is inactive") {
		return VerityStatus{Raw: string(out)}, nil
	}
	if err != nil {
		return VerityStatus{}, fmt.Errorf("reading dm-verity status of %s: %w", name, err)
	}
	return parseStatus(out)
}

func parseStatus(out []byte) (VerityStatus, error) {
	st := VerityStatus{Active: strings.Contains(string(out), " is active"), Raw: string(out)}
	m := statusRE.FindSubmatch(out)
	if m == nil {
		return st, fmt.Errorf("reading dm-verity status: no \"status:\" line in %q", out)
	}
	switch string(m[1]) {
	case "verified":
	case "corrupted":
		st.Corrupted = true
	default:
		return st, fmt.Errorf("reading dm-verity status: unknown status %q", m[1])
	}
	return st, nil
}
