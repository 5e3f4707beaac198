package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeEntry writes a cache entry for key holding tar, as build would.
func writeEntry(t *testing.T, dir, key string, tar []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, baseTar), tar, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, size, err := fileDigest(filepath.Join(dir, baseTar))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(baseInfo{Key: key, TarSHA256: sum, TarSize: size})
	if err := os.WriteFile(filepath.Join(dir, baseMeta), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyBase(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(dir string)
		want    string
	}{
		{"valid", func(string) {}, ""},
		{"missing", func(dir string) { os.RemoveAll(dir) }, "no such file"},
		{"flipped byte", func(dir string) { os.WriteFile(filepath.Join(dir, baseTar), []byte("tarbalL"), 0o644) }, "is corrupt"},
		{"truncated", func(dir string) { os.Truncate(filepath.Join(dir, baseTar), 3) }, "is corrupt"},
		{"no tarball", func(dir string) { os.Remove(filepath.Join(dir, baseTar)) }, "no such file"},
		{"bad metadata", func(dir string) { os.WriteFile(filepath.Join(dir, baseMeta), []byte("{"), 0o644) }, "bad base.json"},
		{"other key", func(dir string) { writeEntry(t, dir, "other", []byte("tarball")) }, "is for key other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "k")
			writeEntry(t, dir, "k", []byte("tarball"))
			tt.corrupt(dir)
			b, err := verifyBase(dir, "k")
			if tt.want == "" {
				if err != nil || b.Meta.Key != "k" {
					t.Fatalf("verifyBase = %+v, %v", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("verifyBase = %v, want an error with %q", err, tt.want)
			}
			if tt.name == "missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a missing entry is not ErrNotExist: %v", err)
			}
		})
	}
}

func TestCachedBaseIsUsed(t *testing.T) {
	dir := t.TempDir()
	writeEntry(t, filepath.Join(dir, "k"), "k", []byte("tarball"))
	c := &baseCache{dir: dir, key: "k", log: slog.New(slog.DiscardHandler)}
	b, err := c.get(t.Context(), false)
	if err != nil || b.Dir != filepath.Join(dir, "k") {
		t.Fatalf("get = %+v, %v", b, err)
	}
}

func TestLockWaitsAndCancels(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.lock")
	log := slog.New(slog.DiscardHandler)
	unlock, err := lock(t.Context(), p, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx, p, log); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want the deadline", err)
	}
	unlock()
	unlock2, err := lock(t.Context(), p, log)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()
}

func TestMmdebstrapFor(t *testing.T) {
	r := &Recipe{Dir: "/r e", Suite: "bookworm", Packages: []string{"systemd"}}
	m := mmdebstrapFor(r, "/c/base.tar", "/dev/shm")
	args := strings.Join(m.Args(), " ")
	for _, want := range []string{"--variant=minbase", "--include=systemd", `--customize-hook=sh '/r e/customize.sh' "$1"`,
		"--dpkgopt=path-exclude=/usr/share/doc/*", "bookworm /c/base.tar /r e/sources.list"} {
		if !strings.Contains(args, want) {
			t.Errorf("mmdebstrap args lack %q: %s", want, args)
		}
	}
	env := strings.Join(m.Env, " ")
	if !strings.Contains(env, "AEGISBPF_RECIPE=/r e") || !strings.Contains(env, "INITRD=No") || m.TempDir != "/dev/shm" {
		t.Errorf("env %q, tempdir %q", env, m.TempDir)
	}
}
