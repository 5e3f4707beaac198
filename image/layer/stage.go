package layer

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"
)

// layerFile is one regular file to put in the image.
type layerFile struct {
	path string // absolute, inside the layer
	mode fs.FileMode
	data []byte
}

func (f layerFile) manifestEntry() File {
	sum := sha256.Sum256(f.data)
	return File{Path: f.path, Mode: fmt.Sprintf("%04o", f.mode.Perm()), Size: int64(len(f.data)), SHA256: hex.EncodeToString(sum[:])}
}

// elfArchitectures maps ELF machines to systemd architecture names (the
// names ConditionArchitecture= and ARCHITECTURE= use).
var elfArchitectures = map[elf.Machine]string{
	elf.EM_X86_64:  "x86-64",
	elf.EM_AARCH64: "arm64",
	elf.EM_RISCV:   "riscv64",
	elf.EM_S390:    "s390x",
}

// agentArchitecture checks that data is a statically linked 64-bit ELF
// executable and returns its systemd architecture name. The layer says
// ID=_any (any distribution), which is only true of a static binary.
func agentArchitecture(data []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("agent binary is not an ELF file: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 {
		return "", fmt.Errorf("agent binary is %v, want a 64-bit executable", f.Class)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("agent binary is an ELF %v, want an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("agent binary is dynamically linked (it has an ELF interpreter); the layer needs a static binary (CGO_ENABLED=0)")
		}
	}
	arch, ok := elfArchitectures[f.Machine]
	if !ok {
		return "", fmt.Errorf("agent binary is for %v, which this builder does not map to a systemd architecture", f.Machine)
	}
	return arch, nil
}

// extensionRelease is the layer's extension-release file. ID=_any makes
// systemd-sysext (252 and later) accept the layer on any distribution and
// skip the SYSEXT_LEVEL=/VERSION_ID= match, so neither is set: the layer
// holds a static binary and depends on no distribution release.
// ARCHITECTURE= (252 and later) refuses a merge on another architecture.
// SYSEXT_SCOPE=system keeps it out of the initrd and of portable services.
// EXTENSION_RELOAD_MANAGER=1 makes newer systemd (257 included) reload the
// service manager after a merge; 252 does not know the key and ignores it.
func extensionRelease(version, arch string) []byte {
	return []byte("ID=_any\n" +
		"ARCHITECTURE=" + arch + "\n" +
		"SYSEXT_SCOPE=system\n" +
		"EXTENSION_RELOAD_MANAGER=1\n" +
		"IMAGE_ID=" + ExtensionName + "\n" +
		"IMAGE_VERSION=" + version + "\n")
}

// unitFiles reads the unit files of dir that belong in the layer:
// aegisbpf*.service, aegisbpf*.socket and aegisbpf*.timer. aegisbpf.service
// must be among them.
func unitFiles(dir string) ([]layerFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading units: %w", err)
	}
	var out []layerFile
	for _, e := range entries {
		if !unitRE.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := readRegular(p, maxUnitSize)
		if err != nil {
			return nil, fmt.Errorf("reading unit: %w", err)
		}
		out = append(out, layerFile{path: path.Join(UnitsDir, e.Name()), mode: 0o644, data: data})
	}
	for _, f := range out {
		if path.Base(f.path) == "aegisbpf.service" {
			return out, nil
		}
	}
	return nil, fmt.Errorf("reading units: %s has no aegisbpf.service", dir)
}

// readRegular reads a regular file (after following symlinks) of at most
// limit bytes.
func readRegular(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s has %d bytes, more than the %d allowed", p, fi.Size(), limit)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return data, nil
}

// writeTree writes files under root with exact modes (whatever the umask),
// directories 0755, and every time set to epoch, so the tree depends on
// nothing but names, modes and contents.
func writeTree(root string, files []layerFile, epoch int64) error {
	dirs := map[string]bool{"/": true}
	for _, f := range files {
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList) // parents first
	for _, d := range dirList {
		host := filepath.Join(root, filepath.FromSlash(d))
		if d != "/" {
			if err := os.Mkdir(host, 0o755); err != nil {
				return fmt.Errorf("staging layer: %w", err)
			}
		}
		if err := os.Chmod(host, 0o755); err != nil {
			return fmt.Errorf("staging layer: %w", err)
		}
	}
	for _, f := range files {
		host := filepath.Join(root, filepath.FromSlash(f.path))
		if err := writeExact(host, f.data, f.mode); err != nil {
			return fmt.Errorf("staging layer: %w", err)
		}
	}
	// Times last: creating an entry changed its directory's time, setting
	// a time changes no other.
	t := time.Unix(epoch, 0)
	paths := dirList
	for _, f := range files {
		paths = append(paths, f.path)
	}
	for _, p := range paths {
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(p)), t, t); err != nil {
			return fmt.Errorf("staging layer: %w", err)
		}
	}
	return nil
}

// writeExact creates p with data and exactly mode, whatever the umask.
func writeExact(p string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("setting mode of %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
