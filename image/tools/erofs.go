package tools

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// minErofs is the oldest mkfs.erofs accepted: the one in Debian 12, on
// which the reproducibility of the options below was measured.
var minErofs = Version{1, 5, 0}

// erofs-utils 1.5 prints "mkfs.erofs 1.5" first on every run and has no
// --version; later releases print "mkfs.erofs (erofs-utils) 1.7.1".
var erofsVersionRE = regexp.MustCompile(`mkfs\.erofs(?: \(erofs-utils\))? v?(\d+)\.(\d+)(?:\.(\d+))?`)

// Erofs is a located mkfs.erofs.
type Erofs struct{ p program }

// FindErofs locates mkfs.erofs on PATH and checks its version.
func FindErofs(ctx context.Context) (*Erofs, error) {
	p, err := find(ctx, "mkfs.erofs", "erofs-utils", erofsVersionRE, minErofs, "--version")
	if err != nil {
		return nil, err
	}
	return &Erofs{p: p}, nil
}

// Path is the program's absolute path.
func (e *Erofs) Path() string { return e.p.path }

// Version is the program's version.
func (e *Erofs) Version() Version { return e.p.version }

// ErofsImage describes one uncompressed erofs image to make.
type ErofsImage struct {
	Source string // directory tree to pack
	Output string // image file to write
	Epoch  int64  // timestamp of every inode and of the superblock
	UUID   string // filesystem UUID, canonical 8-4-4-4-12 form
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Build makes the image. Every inode gets img.Epoch as its time and root as
// its owner, extended attributes are not stored, and the program walks the
// tree in name order, so the same tree (names, modes, contents) gives the
// same bytes whatever the file times, owners and directory order on disk.
// SOURCE_DATE_EPOCH is removed from the program's environment: erofs-utils
// 1.5 changes its timestamp policy when it is set.
func (e *Erofs) Build(ctx context.Context, img ErofsImage) error {
	if img.Source == "" || img.Output == "" {
		return errors.New("making erofs image: source and output are required")
	}
	if img.Epoch < 0 {
		return fmt.Errorf("making erofs image: negative timestamp %d", img.Epoch)
	}
	if !uuidRE.MatchString(img.UUID) {
		return fmt.Errorf("making erofs image: UUID %q is not in lower-case 8-4-4-4-12 form", img.UUID)
	}
	_, err := run(ctx, nil, e.p.path,
		"--quiet",
		"-x-1", // no extended attributes
		"-T"+strconv.FormatInt(img.Epoch, 10),
		"-U"+img.UUID,
		"--all-root",
		img.Output, img.Source)
	if err != nil {
		return fmt.Errorf("making erofs image %s: %w", img.Output, err)
	}
	return nil
}
