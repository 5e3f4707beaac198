package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/image/layer"
	"golang.org/x/sys/unix"
)

// ErrSpace marks a download refused for want of room.
var ErrSpace = errors.New("not enough free space")

// errFetch marks a download cut short or refused by the server: the next
// run resumes it.
var errFetch = errors.New("fetch failed")

// stage downloads r's files into dir: each to name.part, resumed from
// where an earlier run stopped, checked against the channel's size and
// sha256, synced and renamed. A file already complete is checked again
// and kept. Before anything is fetched, the file system must hold what is
// missing, a slot's copy of the whole release, and reserve bytes more.
func stage(ctx context.Context, src Source, r *Release, dir string, reserve int64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the staging directory: %w", err)
	}
	var missing, total int64
	for _, f := range r.Files {
		total += f.Size
		if fi, err := os.Stat(filepath.Join(dir, f.Name)); err == nil && fi.Size() == f.Size {
			continue
		}
		have := int64(0)
		if fi, err := os.Stat(filepath.Join(dir, f.Name+".part")); err == nil && fi.Size() <= f.Size {
			have = fi.Size()
		}
		missing += f.Size - have
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("reading the free space of %s: %w", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if need := missing + total + reserve; free < need {
		return fmt.Errorf("%w: %s has %d bytes free; release %s needs %d to download, %d for its slot and %d kept in reserve",
			ErrSpace, dir, free, r.Version, missing, total, reserve)
	}
	for _, f := range r.Files {
		if err := fetchFile(ctx, src, r, f, dir); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return atomicfile.SyncDir(dir)
}

func fetchFile(ctx context.Context, src Source, r *Release, f File, dir string) error {
	final := filepath.Join(dir, f.Name)
	if fi, err := os.Stat(final); err == nil && fi.Size() == f.Size {
		if _, sum, err := layer.HashFile(final); err == nil && sum == f.SHA256 {
			return nil
		}
	}
	part := final + ".part"
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	have, err := hashPrefix(out, h, f.Size)
	if err != nil {
		return err
	}
	if have == f.Size { // complete but not renamed: an earlier run stopped there
		if sum := hex.EncodeToString(h.Sum(nil)); sum == f.SHA256 {
			return finish(out, part, final)
		}
		if err := out.Truncate(0); err != nil {
			return err
		}
		h.Reset()
		have = 0
	}
	body, start, err := src.Open(ctx, r, f, have)
	if err != nil {
		return fmt.Errorf("%w: %w", errFetch, err)
	}
	defer body.Close()
	if start != have { // the server sent the whole file
		if err := out.Truncate(0); err != nil {
			return err
		}
		h.Reset()
		have = 0
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(body, f.Size-have+1))
	if err != nil {
		out.Sync()
		return fmt.Errorf("%w after %d of %d bytes (the next run resumes): %w", errFetch, have+n, f.Size, err)
	}
	switch got := have + n; {
	case got < f.Size:
		out.Sync()
		return fmt.Errorf("%w: the server ended the file at %d of %d bytes (the next run resumes)", errFetch, got, f.Size)
	case got > f.Size:
		os.Remove(part)
		return fmt.Errorf("%w: the server sent more than the %d bytes the channel says", ErrDigest, f.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		os.Remove(part)
		return fmt.Errorf("%w: sha256 %s, the channel says %s (download discarded)", ErrDigest, sum, f.SHA256)
	}
	return finish(out, part, final)
}

// finish syncs a complete, checked download and gives it its name.
func finish(out *os.File, part, final string) error {
	if err := out.Sync(); err != nil {
		return err
	}
	return os.Rename(part, final)
}

// hashPrefix feeds a partial download to h and returns its length; a part
// longer than the file is discarded.
func hashPrefix(f *os.File, h hash.Hash, size int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() > size {
		return 0, f.Truncate(0)
	}
	n, err := io.Copy(h, io.LimitReader(f, fi.Size()))
	if err != nil {
		return 0, fmt.Errorf("reading the partial download: %w", err)
	}
	return n, nil
}

// clearStaging removes every staged release but keep.
func clearStaging(dir, keep string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() != keep {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
