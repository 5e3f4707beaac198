package appliance

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// File is one file, directory or symlink the builder adds to the
// appliance. Every entry and every parent the builder creates is owned by
// root; parents get mode 0755. A file or symlink replaces what is at its
// path; a directory that already exists is left as it is (owner and mode),
// so overlaying a tree never changes the mode of /usr or /etc.
type File struct {
	// Path is the absolute path in the guest, e.g. /usr/lib/aegisbpf/keys/a.pub.
	Path string
	// Mode holds the permission bits (setuid, setgid and sticky included)
	// and the type: fs.ModeDir for a directory, fs.ModeSymlink for a
	// symlink, no type bit for a regular file.
	Mode fs.FileMode
	// Source is a host file to copy, for a regular file. When it is empty,
	// Data is the contents.
	Source string
	Data   []byte
	// Target is where a symlink points.
	Target string
}

func (f File) String() string { return f.Path }

// check validates the entry on its own.
func (f File) check() error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
		return fmt.Errorf("%q: want a clean absolute path below /", f.Path)
	}
	if f.Mode&0o7000 != 0 {
		return fmt.Errorf("%s: mode %#o has Unix setuid/setgid/sticky bits: use fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky", f.Path, uint32(f.Mode))
	}
	switch f.Mode.Type() {
	case fs.ModeDir:
	case fs.ModeSymlink:
		if f.Target == "" {
			return fmt.Errorf("%s: symlink without a target", f.Path)
		}
	case 0:
		if f.Source != "" && f.Data != nil {
			return fmt.Errorf("%s: both Source and Data are set", f.Path)
		}
	default:
		return fmt.Errorf("%s: unsupported file type %s", f.Path, f.Mode.Type())
	}
	return nil
}

// under reports whether guest path p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// FilesFromDir lists the tree below the host directory dir as Files placed
// under guestDir, keeping permissions and symlinks. The directory itself is
// not listed, only what it holds; guestDir's own missing parents are made
// by the builder.
func FilesFromDir(dir, guestDir string) ([]File, error) {
	if !path.IsAbs(guestDir) {
		return nil, fmt.Errorf("listing %s: guest directory %q is not absolute", dir, guestDir)
	}
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := File{Path: path.Join(guestDir, filepath.ToSlash(rel)), Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		switch {
		case fi.IsDir():
			f.Mode |= fs.ModeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			if f.Target, err = os.Readlink(p); err != nil {
				return err
			}
			f.Mode = fs.ModeSymlink | 0o777
		case fi.Mode().IsRegular():
			f.Source = p
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return files, nil
}

// install writes files into the directory tree at dir, which stands for the
// guest's /. Every access goes through an os.Root, so a symlink in the tree
// (say /etc/x -> /usr/y) can never lead a write out to the host: relative
// links inside the tree are followed, absolute ones are refused.
func install(dir string, files []File) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening the image tree: %w", err)
	}
	defer root.Close()
	// Build runs as root and makes everything root's; unprivileged unit
	// tests leave the owner alone.
	chown := os.Geteuid() == 0
	for _, f := range files {
		if err := f.check(); err != nil {
			return err
		}
		if err := installOne(root, f, chown); err != nil {
			return fmt.Errorf("adding %s: %w", f.Path, err)
		}
	}
	return nil
}

func installOne(root *os.Root, f File, chown bool) error {
	rel := strings.TrimPrefix(f.Path, "/")
	if parent := path.Dir(rel); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	perm := f.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	old, err := root.Lstat(rel)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if f.Mode.IsDir() {
		if exists && !old.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", f.Path)
		}
		if exists {
			return nil // like tar --no-overwrite-dir: an overlay keeps /usr 0755
		}
		if err := root.Mkdir(rel, 0o700); err != nil {
			return err
		}
	} else {
		if exists && old.IsDir() {
			return fmt.Errorf("%s exists and is a directory", f.Path)
		}
		if exists {
			if err := root.Remove(rel); err != nil {
				return err
			}
		}
		if f.Mode.Type() == fs.ModeSymlink {
			if err := root.Symlink(f.Target, rel); err != nil {
				return err
			}
			if chown {
				return root.Lchown(rel, 0, 0)
			}
			return nil
		}
		if err := writeFile(root, rel, f); err != nil {
			return err
		}
	}
	if chown {
		if err := root.Lchown(rel, 0, 0); err != nil {
			return err
		}
	}
	// Chmod after creation: the mode given to create is cut by the umask
	// and drops setuid bits.
	return root.Chmod(rel, perm)
}

func writeFile(root *os.Root, rel string, f File) error {
	w, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if f.Source != "" {
		var src *os.File
		if src, err = os.Open(f.Source); err == nil {
			_, err = io.Copy(w, src)
			src.Close()
		}
	} else {
		_, err = w.Write(f.Data)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}
