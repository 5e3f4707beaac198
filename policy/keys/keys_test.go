package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyPairRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "test")
	if err := WriteKeyPair(base, pub, priv); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("private key mode = %04o, want 0600", got)
	}
	got, err := LoadPrivate(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(priv) {
		t.Error("loaded private key differs")
	}
	ring, err := LoadRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := ring.Lookup(ID(pub)); !ok || !k.Equal(pub) {
		t.Errorf("ring lacks key %s: %v", ID(pub), ring.IDs())
	}
	if err := WriteKeyPair(base, pub, priv); err == nil {
		t.Error("WriteKeyPair overwrote an existing key")
	}
}

func TestLoadPrivateRefusesWideMode(t *testing.T) {
	dir := t.TempDir()
	pub, priv, _ := Generate()
	base := filepath.Join(dir, "k")
	if err := WriteKeyPair(base, pub, priv); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base+".key", 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPrivate(base + ".key")
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadPrivate = %v, want a mode error", err)
	}
}

func TestLoadRingErrors(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		if _, err := LoadRing(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no trusted keys") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("not a key"), 0o644)
		if _, err := LoadRing(dir); err == nil || !strings.Contains(err.Error(), "bad.pub") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("group-writable", func(t *testing.T) {
		dir := t.TempDir()
		pub, priv, _ := Generate()
		WriteKeyPair(filepath.Join(dir, "k"), pub, priv)
		os.Chmod(filepath.Join(dir, "k.pub"), 0o666)
		if _, err := LoadRing(dir); err == nil || !strings.Contains(err.Error(), "writable") {
			t.Fatalf("got %v", err)
		}
	})
}
