package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// KernelSpec names a Debian kernel package to boot. Package is the pinned
// name; when the archive no longer serves it (an ABI bump), the newest
// package whose name matches Fallback is used instead, and the harness says so.
type KernelSpec struct {
	Name     string // short name used in output, e.g. "6.1"
	Package  string
	Fallback *regexp.Regexp
}

// Kernels are the kernels every kernel test runs on.
var Kernels = []KernelSpec{
	{
		Name:     "6.1",
		Package:  "linux-image-6.1.0-56-amd64",
		Fallback: regexp.MustCompile(`^linux-image-6\.1\.0-[0-9]+-amd64$`),
	},
	{
		Name:     "6.12",
		Package:  "linux-image-6.12.117+deb12-amd64-unsigned",
		Fallback: regexp.MustCompile(`^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$`),
	},
}

// Kernel is an unpacked kernel ready to boot.
type Kernel struct {
	Spec    KernelSpec
	Package string
	Version string
	Release string // uname -r, the lib/modules directory name
	Vmlinuz string
	Root    string // the unpacked package root (holds lib/modules)
}

// ModulesDir is the kernel's module tree.
func (k *Kernel) ModulesDir() string {
	return filepath.Join(k.Root, "lib", "modules", k.Release)
}

// CacheDir is where downloads are kept, outside the repository:
// $AEGISBPF_CACHE, else $XDG_CACHE_HOME/aegisbpf, else ~/.cache/aegisbpf.
func CacheDir() (string, error) {
	if d := os.Getenv("AEGISBPF_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(d, "aegisbpf"), nil
}

// FetchKernel returns the kernel of spec, unpacked in the cache. The cache
// entry is keyed by the package's SHA-256 from the signed apt index; the
// download is verified against it, and the unpacked vmlinuz against the
// digest recorded at unpack time, so a corrupt or partial entry is fetched
// again.
func FetchKernel(ctx context.Context, spec KernelSpec, cache string, log io.Writer) (*Kernel, error) {
	pkg, err := resolvePackage(ctx, spec)
	if err != nil {
		return nil, err
	}
	if pkg != spec.Package {
		fmt.Fprintf(log, "vm: %s is no longer served; using %s\n", spec.Package, pkg)
	}
	fields, err := aptShow(ctx, pkg)
	if err != nil {
		return nil, err
	}
	sum, version := fields["SHA256"], fields["Version"]
	if len(sum) != 64 {
		return nil, fmt.Errorf("apt index has no SHA256 for %s", pkg)
	}
	dir := filepath.Join(cache, "kernels", sum)
	if k, err := loadKernel(dir, spec, pkg, version); err == nil {
		return k, nil
	}
	fmt.Fprintf(log, "vm: fetching %s %s into %s\n", pkg, version, dir)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cache, "fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if out, err := command(ctx, tmp, "apt-get", "download", pkg+"="+version); err != nil {
		return nil, fmt.Errorf("downloading %s: %w\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return nil, fmt.Errorf("downloading %s: expected one .deb, found %d", pkg, len(debs))
	}
	got, err := fileSHA256(debs[0])
	if err != nil {
		return nil, err
	}
	if got != sum {
		return nil, fmt.Errorf("downloaded %s has sha256 %s, the apt index says %s", filepath.Base(debs[0]), got, sum)
	}
	root := filepath.Join(tmp, "root")
	if out, err := command(ctx, tmp, "dpkg-deb", "-x", debs[0], root); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w\n%s", pkg, err, out)
	}
	vmlinuz, release, err := findVmlinuz(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkg, err)
	}
	// modules.dep is made at install time, not shipped: make it here.
	if out, err := command(ctx, "", "depmod", "-b", root, release); err != nil {
		return nil, fmt.Errorf("depmod for %s: %w\n%s", pkg, err, out)
	}
	vsum, err := fileSHA256(vmlinuz)
	if err != nil {
		return nil, err
	}
	meta := fmt.Sprintf("package=%s\nversion=%s\nrelease=%s\nvmlinuz_sha256=%s\n", pkg, version, release, vsum)
	if err := os.WriteFile(filepath.Join(root, "aegisbpf-kernel.meta"), []byte(meta), 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(root, dir); err != nil {
		return nil, fmt.Errorf("moving %s into the cache: %w", pkg, err)
	}
	return loadKernel(dir, spec, pkg, version)
}

func loadKernel(dir string, spec KernelSpec, pkg, version string) (*Kernel, error) {
	data, err := os.ReadFile(filepath.Join(dir, "aegisbpf-kernel.meta"))
	if err != nil {
		return nil, err
	}
	meta := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			meta[k] = v
		}
	}
	vmlinuz := filepath.Join(dir, "boot", "vmlinuz-"+meta["release"])
	sum, err := fileSHA256(vmlinuz)
	if err != nil {
		return nil, err
	}
	if sum != meta["vmlinuz_sha256"] {
		return nil, fmt.Errorf("cached %s is corrupt", vmlinuz)
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", "modules", meta["release"], "modules.dep")); err != nil {
		return nil, err
	}
	return &Kernel{Spec: spec, Package: pkg, Version: version, Release: meta["release"], Vmlinuz: vmlinuz, Root: dir}, nil
}

func findVmlinuz(root string) (path, release string, err error) {
	m, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return "", "", fmt.Errorf("expected one boot/vmlinuz-*, found %d", len(m))
	}
	return m[0], strings.TrimPrefix(filepath.Base(m[0]), "vmlinuz-"), nil
}

// resolvePackage returns spec.Package if apt knows it, else the newest
// package matching spec.Fallback.
func resolvePackage(ctx context.Context, spec KernelSpec) (string, error) {
	if _, err := aptShow(ctx, spec.Package); err == nil {
		return spec.Package, nil
	}
	out, err := command(ctx, "", "apt-cache", "pkgnames", "linux-image-")
	if err != nil {
		return "", fmt.Errorf("listing kernel packages (run make deps, which runs apt-get update): %w\n%s", err, out)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if spec.Fallback.MatchString(sc.Text()) {
			names = append(names, sc.Text())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("apt knows neither %s nor any package matching %s (run make deps, which runs apt-get update)",
			spec.Package, spec.Fallback)
	}
	sort.Slice(names, func(i, j int) bool { return versionLess(names[i], names[j]) })
	return names[len(names)-1], nil
}

// versionLess orders package names by their numeric fields.
func versionLess(a, b string) bool {
	na, nb := numbers(a), numbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	return len(na) < len(nb)
}

var numRE = regexp.MustCompile(`[0-9]+`)

func numbers(s string) []int {
	var out []int
	for _, m := range numRE.FindAllString(s, -1) {
		n := 0
		for _, c := range m {
			n = n*10 + int(c-'0')
		}
		out = append(out, n)
	}
	return out
}

func aptShow(ctx context.Context, pkg string) (map[string]string, error) {
	out, err := command(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return nil, fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			fields[k] = v
		}
	}
	if fields["Package"] != pkg {
		return nil, fmt.Errorf("apt-cache show %s: no such package", pkg)
	}
	return fields, nil
}

func command(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return out, err
	}
	return out, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SelectKernels returns the specs named in list (comma-separated short
// names), or all of Kernels for "all".
func SelectKernels(list string) ([]KernelSpec, error) {
	if list == "all" {
		return Kernels, nil
	}
	var out []KernelSpec
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, k := range Kernels {
			if k.Name == name {
				out = append(out, k)
				found = true
			}
		}
		if !found {
			var known []string
			for _, k := range Kernels {
				known = append(known, k.Name)
			}
			return nil, fmt.Errorf("unknown kernel %q (known: %s)", name, strings.Join(known, ","))
		}
	}
	return out, nil
}
