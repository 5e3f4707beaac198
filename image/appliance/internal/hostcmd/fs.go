package hostcmd

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// Untar unpacks tarball into dir (which must exist), keeping numeric
// owners, permissions, device nodes and extended attributes.
func Untar(ctx context.Context, tarball, dir string) error {
	if err := run(ctx, nil, nil, "tar", UntarArgs(tarball, dir)...); err != nil {
		return fmt.Errorf("unpacking %s: %w", tarball, err)
	}
	return nil
}

// UntarArgs returns the command line after "tar" for Untar.
func UntarArgs(tarball, dir string) []string {
	return []string{"--extract", "--file", tarball, "--directory", dir,
		"--numeric-owner", "--same-permissions", "--xattrs", "--xattrs-include=*"}
}

// Erofs describes a read-only erofs image made from a directory.
type Erofs struct {
	Image string // the file to write
	Dir   string // its contents
	UUID  string // a fixed file system UUID, so equal inputs give equal images
}

// Args returns the command line after "mkfs.erofs". The image is not
// compressed: under TCG, decompression costs more boot time than the
// extra bytes do.
func (e Erofs) Args() []string {
	args := []string{"--quiet"}
	if e.UUID != "" {
		args = append(args, "-U"+e.UUID)
	}
	return append(args, e.Image, e.Dir)
}

// Make writes the image.
func (e Erofs) Make(ctx context.Context) error {
	if err := run(ctx, nil, nil, "mkfs.erofs", e.Args()...); err != nil {
		return fmt.Errorf("making the erofs image %s: %w", e.Image, err)
	}
	return nil
}

// Ext4 describes a sparse ext4 disk image populated from a directory.
type Ext4 struct {
	Image   string // the file to write
	Dir     string // its contents; the directory's owner and mode become the root's
	Label   string
	UUID    string
	SizeMiB int
}

// Args returns the command line after "mkfs.ext4". Inode tables and the
// journal are initialised here rather than lazily by the guest kernel,
// which would otherwise spend emulated CPU on it after every first boot.
func (e Ext4) Args() []string {
	args := []string{"-q", "-F", "-t", "ext4", "-L", e.Label, "-d", e.Dir,
		"-E", "lazy_itable_init=0,lazy_journal_init=0"}
	if e.UUID != "" {
		args = append(args, "-U", e.UUID)
	}
	return append(args, e.Image, strconv.Itoa(e.SizeMiB)+"M")
}

// Make creates the sparse file and the file system in it.
func (e Ext4) Make(ctx context.Context) error {
	f, err := os.OpenFile(e.Image, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", e.Image, err)
	}
	err = f.Truncate(int64(e.SizeMiB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sizing %s: %w", e.Image, err)
	}
	if err := run(ctx, nil, nil, "mkfs.ext4", e.Args()...); err != nil {
		return fmt.Errorf("making the ext4 image %s: %w", e.Image, err)
	}
	return nil
}
