package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Initramfs collects the files of a guest root and writes them as a gzipped
// newc cpio archive. Paths are absolute guest paths; parents are created.
type Initramfs struct {
	files map[string]entry
}

type entry struct {
	data    []byte
	src     string // host file to read at Write time, when data is nil
	perm    uint32
	dir     bool
	symlink string
}

// NewInitramfs returns an empty initramfs.
func NewInitramfs() *Initramfs {
	return &Initramfs{files: map[string]entry{}}
}

func (r *Initramfs) parents(p string) {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := r.files[d]; !ok {
			r.files[d] = entry{dir: true, perm: 0o755}
		}
	}
}

// Dir adds an empty directory.
func (r *Initramfs) Dir(p string) {
	r.parents(p)
	r.files[p] = entry{dir: true, perm: 0o755}
}

// Bytes adds a file with the given contents.
func (r *Initramfs) Bytes(p string, perm uint32, data []byte) {
	r.parents(p)
	r.files[p] = entry{data: data, perm: perm}
}

// HostFile adds the host file src at guest path p.
func (r *Initramfs) HostFile(p, src string, perm uint32) {
	r.parents(p)
	r.files[p] = entry{src: src, perm: perm}
}

// Symlink adds p -> target.
func (r *Initramfs) Symlink(p, target string) {
	r.parents(p)
	r.files[p] = entry{symlink: target}
}

// HostTree copies the host directory src to guest path p, recursively.
func (r *Initramfs) HostTree(p, src string) error {
	return filepath.Walk(src, func(hp string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, hp)
		gp := path.Join(p, filepath.ToSlash(rel))
		switch {
		case fi.IsDir():
			r.Dir(gp)
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			r.Symlink(gp, t)
		case fi.Mode().IsRegular():
			r.HostFile(gp, hp, uint32(fi.Mode().Perm()))
		}
		return nil
	})
}

// HostBinary adds a dynamically linked host binary at the same path in the
// guest, together with the shared libraries ldd names for it.
func (r *Initramfs) HostBinary(ctx context.Context, bin string) error {
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return fmt.Errorf("finding %s: %w", bin, err)
	}
	r.HostFile(bin, real, 0o755)
	out, err := command(ctx, "", "ldd", real)
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil
		}
		return fmt.Errorf("listing libraries of %s: %w\n%s", bin, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		realLib, err := filepath.EvalSymlinks(lib)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", lib, err)
		}
		r.HostFile(lib, realLib, 0o755)
	}
	return nil
}

// Modules adds the named modules of k and everything they depend on,
// decompressed, and returns the guest paths in load order.
func (r *Initramfs) Modules(ctx context.Context, k *Kernel, names []string) ([]string, error) {
	dep, err := readModulesDep(k.ModulesDir())
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for mod := range dep {
		byName[moduleName(mod)] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(mod string)
	visit = func(mod string) {
		if seen[mod] {
			return
		}
		seen[mod] = true
		for _, d := range dep[mod] {
			visit(d)
		}
		order = append(order, mod)
	}
	for _, n := range names {
		mod, ok := byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			continue // built into this kernel
		}
		visit(mod)
	}
	var guest []string
	for _, mod := range order {
		src := filepath.Join(k.ModulesDir(), mod)
		data, err := decompressModule(ctx, src)
		if err != nil {
			return nil, err
		}
		gp := "/lib/modules/" + strings.TrimSuffix(strings.TrimSuffix(mod, ".xz"), ".zst")
		r.Bytes(gp, 0o644, data)
		guest = append(guest, gp)
	}
	return guest, nil
}

func moduleName(mod string) string {
	b := path.Base(mod)
	b = b[:strings.Index(b, ".ko")]
	return strings.ReplaceAll(b, "-", "_")
}

func readModulesDep(dir string) (map[string][]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	dep := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		dep[mod] = strings.Fields(deps)
	}
	return dep, nil
}

func decompressModule(ctx context.Context, src string) ([]byte, error) {
	switch {
	case strings.HasSuffix(src, ".xz"):
		return command(ctx, "", "xz", "-dc", src)
	case strings.HasSuffix(src, ".zst"):
		return command(ctx, "", "zstd", "-dcq", src)
	default:
		return os.ReadFile(src)
	}
}

// Write writes the archive, gzipped, to path.
func (r *Initramfs) Write(dst string) error {
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names) // parents sort before children
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	cw := newCPIOWriter(gz)
	for _, n := range names {
		e := r.files[n]
		name := strings.TrimPrefix(n, "/")
		switch {
		case e.dir:
			err = cw.Dir(name, e.perm)
		case e.symlink != "":
			err = cw.Symlink(name, e.symlink)
		default:
			data := e.data
			if data == nil && e.src != "" {
				if data, err = os.ReadFile(e.src); err != nil {
					return err
				}
			}
			err = cw.File(name, e.perm, data)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", n, err)
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}
