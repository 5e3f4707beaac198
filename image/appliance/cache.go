package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance/internal/hostcmd"
)

// DefaultCacheDir is where downloads and base roots are kept, outside the
// repository: $AEGISBPF_CACHE, else $XDG_CACHE_HOME/aegisbpf, else
// ~/.cache/aegisbpf (the same place tests/vm keeps its kernels).
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("AEGISBPF_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(d, "aegisbpf"), nil
}

const (
	baseTar  = "base.tar"
	baseMeta = "base.json"
)

// base is a verified cache entry.
type base struct {
	Dir  string
	Meta baseInfo
}

func (b *base) tar() string { return filepath.Join(b.Dir, baseTar) }

// baseInfo is base.json, written last when an entry is complete.
type baseInfo struct {
	Key         string    `json:"key"`
	Suite       string    `json:"suite"`
	Packages    []string  `json:"packages"`
	TarSHA256   string    `json:"tar_sha256"`
	TarSize     int64     `json:"tar_size"`
	BuiltAt     time.Time `json:"built_at"`
	BuildTimeMS int64     `json:"build_time_ms"`
}

// baseCache finds or builds the base root of one recipe.
type baseCache struct {
	dir     string // CacheDir/appliance
	recipe  *Recipe
	key     string
	scratch string
	log     *slog.Logger
	out     io.Writer // mmdebstrap progress, or nil
}

// get returns the verified base root, building it when the cache has no
// valid entry or rebuild is set. Concurrent builders of the same key wait
// for each other.
func (c *baseCache) get(ctx context.Context, rebuild bool) (*base, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the cache: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(c.dir, c.key+".lock"), c.log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	entry := filepath.Join(c.dir, c.key)
	if !rebuild {
		b, err := verifyBase(entry, c.key)
		if err == nil {
			c.log.Info("appliance: cached base root", "key", short(c.key), "dir", entry)
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("appliance: rebuilding the base root", "key", short(c.key), "reason", err)
		}
	}
	return c.build(ctx, entry)
}

func (c *baseCache) build(ctx context.Context, entry string) (*base, error) {
	start := time.Now()
	c.log.Info("appliance: building the base root with mmdebstrap (minutes, once per recipe)",
		"suite", c.recipe.Suite, "packages", len(c.recipe.Packages), "key", short(c.key))
	tmp, err := os.MkdirTemp(c.dir, ".build-"+short(c.key)+"-")
	if err != nil {
		return nil, fmt.Errorf("creating the cache entry: %w", err)
	}
	defer os.RemoveAll(tmp)
	m := mmdebstrapFor(c.recipe, filepath.Join(tmp, baseTar), c.scratch)
	if err := m.Run(ctx, c.out); err != nil {
		return nil, err
	}
	sum, size, err := fileDigest(filepath.Join(tmp, baseTar))
	if err != nil {
		return nil, err
	}
	info := baseInfo{
		Key: c.key, Suite: c.recipe.Suite, Packages: c.recipe.Packages,
		TarSHA256: sum, TarSize: size, BuiltAt: time.Now().UTC().Truncate(time.Second),
		BuildTimeMS: time.Since(start).Milliseconds(),
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(tmp, baseMeta), append(data, '\n')); err != nil {
		return nil, fmt.Errorf("writing the cache entry: %w", err)
	}
	if err := os.RemoveAll(entry); err != nil {
		return nil, fmt.Errorf("removing the old cache entry: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, entry); err != nil {
		return nil, fmt.Errorf("installing the cache entry: %w", err)
	}
	c.log.Info("appliance: base root built", "took", time.Since(start).Round(time.Second),
		"size_mb", size>>20, "dir", entry)
	return &base{Dir: entry, Meta: info}, nil
}

// The builder's fixed mmdebstrap choices. keyOptions lists them for the
// cache key, so changing one here rebuilds the base root.
const (
	builderVersion = "1"
	variant        = "minbase"
	// initrdEnv stops the kernel's postinst from building an initramfs:
	// the customize hook builds it once the recipe's module list is in place.
	initrdEnv = "INITRD=No"
)

// dpkgOptions keep documentation and translations out of the read-only
// root; copyright files stay.
func dpkgOptions() []string {
	return []string{
		"path-exclude=/usr/share/man/*",
		"path-exclude=/usr/share/info/*",
		"path-exclude=/usr/share/locale/*",
		"path-exclude=/usr/share/doc/*",
		"path-include=/usr/share/doc/*/copyright",
	}
}

func keyOptions() []string {
	opts := []string{"builder=" + builderVersion, "variant=" + variant, "env=" + initrdEnv}
	for _, o := range dpkgOptions() {
		opts = append(opts, "dpkgopt="+o)
	}
	return opts
}

func mmdebstrapFor(r *Recipe, output, scratch string) hostcmd.Mmdebstrap {
	return hostcmd.Mmdebstrap{
		Suite:    r.Suite,
		Sources:  filepath.Join(r.Dir, recipeSources),
		Variant:  variant,
		Include:  r.Packages,
		DpkgOpts: dpkgOptions(),
		CustomizeHooks: []string{
			"sh " + shellQuote(filepath.Join(r.Dir, recipeCustomize)) + ` "$1"`,
		},
		Env:     []string{"AEGISBPF_RECIPE=" + r.Dir, initrdEnv},
		TempDir: scratch,
		Output:  output,
	}
}

// verifyBase checks a cache entry: its metadata names key, and the tarball
// has the recorded size and SHA-256.
func verifyBase(dir, key string) (*base, error) {
	data, err := os.ReadFile(filepath.Join(dir, baseMeta))
	if err != nil {
		return nil, err
	}
	var info baseInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("cache entry %s: bad %s: %w", dir, baseMeta, err)
	}
	if info.Key != key {
		return nil, fmt.Errorf("cache entry %s is for key %s", dir, short(info.Key))
	}
	sum, size, err := fileDigest(filepath.Join(dir, baseTar))
	if err != nil {
		return nil, fmt.Errorf("cache entry %s: %w", dir, err)
	}
	if size != info.TarSize || sum != info.TarSHA256 {
		return nil, fmt.Errorf("cache entry %s is corrupt: %s has %d bytes and sha256 %s, recorded %d and %s",
			dir, baseTar, size, short(sum), info.TarSize, short(info.TarSHA256))
	}
	return &base{Dir: dir, Meta: info}, nil
}

func fileDigest(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// lock takes an exclusive flock on p, polling so that ctx can cancel the
// wait, and returns the function that releases it.
func lock(ctx context.Context, p string, log *slog.Logger) (func(), error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the cache lock: %w", err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking the cache: %w", err)
		}
		if !waited {
			log.Info("appliance: another build holds the cache lock; waiting", "lock", p)
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the cache lock: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func writeFileSync(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
