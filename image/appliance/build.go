package appliance

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance/internal/hostcmd"
)

// Config is one appliance build.
type Config struct {
	// Recipe is the recipe directory, normally rootfs/appliance.
	Recipe string
	// OutDir receives the appliance; it is created if missing, and a
	// previous appliance in it is replaced.
	OutDir string
	// CacheDir holds the cached base roots under appliance/; empty means
	// DefaultCacheDir().
	CacheDir string
	// ScratchDir is where the root is assembled; empty means /dev/shm when
	// it is a tmpfs with room, else the system temporary directory.
	ScratchDir string
	// RootFiles are added to the read-only root. None may be under /var.
	RootFiles []File
	// VarFiles are added to the /var disk. Each must be under /var.
	VarFiles []File
	// VarSizeMiB is the size of the sparse /var disk; 0 means 512.
	VarSizeMiB int
	// Rebuild makes a new base root even when the cached one is valid.
	Rebuild bool
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// ToolOutput receives mmdebstrap's progress on a cold build; nil keeps
	// it for error messages only.
	ToolOutput io.Writer
}

// DefaultVarSizeMiB is the size of the /var disk when Config leaves it 0.
const DefaultVarSizeMiB = 512

// VarLabel is the ext4 label of the /var disk; the recipe's fstab mounts
// LABEL=aegisvar on /var.
const VarLabel = "aegisvar"

// Build builds the appliance described by cfg into cfg.OutDir. It needs
// root. On error, OutDir holds no appliance.json, so Load refuses it.
func Build(ctx context.Context, cfg Config) (*Appliance, error) {
	start := time.Now()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if os.Geteuid() != 0 {
		return nil, errors.New("building the appliance needs root (mmdebstrap runs in root mode and the images keep the root's owners)")
	}
	if err := checkFiles(cfg.RootFiles, cfg.VarFiles); err != nil {
		return nil, err
	}
	recipe, err := LoadRecipe(cfg.Recipe)
	if err != nil {
		return nil, err
	}
	key, err := recipe.Key(keyOptions())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}
	for _, n := range outputNames() {
		if err := os.Remove(filepath.Join(cfg.OutDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing the previous appliance: %w", err)
		}
	}
	bc := &baseCache{
		dir: filepath.Join(cfg.CacheDir, "appliance"), recipe: recipe, key: key,
		scratch: cfg.ScratchDir, log: log, out: cfg.ToolOutput,
	}
	b, err := bc.get(ctx, cfg.Rebuild)
	if err != nil {
		return nil, err
	}
	baseDone := time.Now()

	work, err := os.MkdirTemp(cfg.ScratchDir, "aegisbpf-appliance-")
	if err != nil {
		return nil, fmt.Errorf("creating the scratch directory: %w", err)
	}
	defer os.RemoveAll(work)
	a, err := assemble(ctx, cfg, recipe, b, work)
	if err != nil {
		return nil, err
	}
	log.Info("appliance: built", "dir", cfg.OutDir, "kernel", a.KernelRelease,
		"base", baseDone.Sub(start).Round(time.Millisecond), "images", time.Since(baseDone).Round(time.Millisecond))
	return a, nil
}

func (cfg *Config) defaults() error {
	if cfg.Recipe == "" || cfg.OutDir == "" {
		return errors.New("appliance: Recipe and OutDir are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.VarSizeMiB == 0 {
		cfg.VarSizeMiB = DefaultVarSizeMiB
	}
	if cfg.VarSizeMiB < 64 {
		return fmt.Errorf("appliance: a %d MiB /var disk is too small (want at least 64)", cfg.VarSizeMiB)
	}
	if cfg.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return err
		}
		cfg.CacheDir = d
	}
	if cfg.ScratchDir == "" {
		cfg.ScratchDir = defaultScratch()
	}
	return nil
}

// defaultScratch prefers /dev/shm: dpkg syncs every file it writes, which
// costs minutes on a disk and nothing on a tmpfs.
func defaultScratch() string {
	const tmpfsMagic = 0x01021994
	const need = 3 << 30
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic &&
		st.Bavail*uint64(st.Bsize) >= need {
		return "/dev/shm"
	}
	return os.TempDir()
}

func checkFiles(rootFiles, varFiles []File) error {
	for _, f := range rootFiles {
		if under(f.Path, "/var") {
			return fmt.Errorf("root file %s is under /var, which is the /var disk: list it in VarFiles", f.Path)
		}
	}
	for _, f := range varFiles {
		if !under(f.Path, "/var") || f.Path == "/var" {
			return fmt.Errorf("var file %s is not below /var", f.Path)
		}
	}
	return nil
}

// assemble unpacks the base root into work, adds the files, and writes the
// images and the boot files into cfg.OutDir.
func assemble(ctx context.Context, cfg Config, recipe *Recipe, b *base, work string) (*Appliance, error) {
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	if err := hostcmd.Untar(ctx, b.tar(), root); err != nil {
		return nil, err
	}
	// mmdebstrap empties /etc/machine-id; a fixed id keeps the journal of
	// a read-only root in one place across boots.
	extra := append([]File(nil), cfg.RootFiles...)
	if recipe.MachineID != "" {
		extra = append([]File{{Path: "/etc/machine-id", Mode: 0o444, Data: []byte(recipe.MachineID + "\n")}}, extra...)
	}
	if err := install(root, extra); err != nil {
		return nil, fmt.Errorf("adding root files: %w", err)
	}
	if err := install(root, cfg.VarFiles); err != nil {
		return nil, fmt.Errorf("adding var files: %w", err)
	}
	release, err := kernelRelease(root)
	if err != nil {
		return nil, err
	}

	// /var moves to its own disk; the root keeps an empty mount point.
	varDir := filepath.Join(work, "var")
	if err := os.Rename(filepath.Join(root, "var"), varDir); err != nil {
		return nil, fmt.Errorf("splitting /var off the root: %w", err)
	}
	if err := os.Mkdir(filepath.Join(root, "var"), 0o755); err != nil {
		return nil, err
	}

	a := &Appliance{
		Dir: cfg.OutDir, Format: formatVersion,
		Root: rootImage, Var: varImage, Kernel: kernelFile, Initrd: initrdFile, CmdlineFile: cmdlineFile,
		Cmdline: recipe.Cmdline, KernelRelease: release, VarLabel: VarLabel, VarSizeMiB: cfg.VarSizeMiB,
		Suite: recipe.Suite, BaseKey: b.Meta.Key, BaseBuiltAt: b.Meta.BuiltAt,
		RootFiles: len(cfg.RootFiles), VarFiles: len(cfg.VarFiles),
	}
	erofs := hostcmd.Erofs{Image: a.Path(a.Root), Dir: root, UUID: uuidFrom(b.Meta.Key, "root")}
	if err := erofs.Make(ctx); err != nil {
		return nil, err
	}
	ext4 := hostcmd.Ext4{Image: a.Path(a.Var), Dir: varDir, Label: VarLabel,
		UUID: uuidFrom(b.Meta.Key, "var"), SizeMiB: cfg.VarSizeMiB}
	if err := ext4.Make(ctx); err != nil {
		return nil, err
	}
	for src, dst := range map[string]string{
		"boot/vmlinuz-" + release:    a.Kernel,
		"boot/initrd.img-" + release: a.Initrd,
	} {
		if err := copyFile(filepath.Join(root, src), a.Path(dst)); err != nil {
			return nil, fmt.Errorf("copying the boot files: %w", err)
		}
	}
	if err := os.WriteFile(a.Path(a.CmdlineFile), []byte(a.Cmdline+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing the command line: %w", err)
	}
	if err := a.save(); err != nil {
		return nil, err
	}
	return a, nil
}

// kernelRelease finds the one kernel of the root and checks its initramfs.
func kernelRelease(root string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return "", fmt.Errorf("the base root has %d kernels in /boot, want exactly one", len(m))
	}
	release := strings.TrimPrefix(filepath.Base(m[0]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(root, "boot", "initrd.img-"+release)); err != nil {
		return "", fmt.Errorf("the base root has no initramfs for %s: %w", release, err)
	}
	return release, nil
}

// uuidFrom derives a stable UUID (version 4 layout) from the base key, so
// the same base and role give the same file system UUID.
func uuidFrom(key, role string) string {
	s := sha256.Sum256([]byte(key + "\x00" + role))
	s[6] = s[6]&0x0f | 0x40
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
