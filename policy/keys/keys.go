package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IDLen is the number of hex digits in a key ID.
const IDLen = 16

// ID returns the key ID of pub.
func ID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:IDLen]
}

// Generate makes a new key pair from crypto/rand.
func Generate() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// MarshalPrivate encodes priv as a PKCS#8 PEM block.
func MarshalPrivate(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublic encodes pub as a PKIX PEM block.
func MarshalPublic(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivate decodes a PKCS#8 PEM Ed25519 private key.
func ParsePrivate(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\"", block.Type)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want an Ed25519 key", k)
	}
	return priv, nil
}

// ParsePublic decodes a PKIX PEM Ed25519 public key.
func ParsePublic(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PKIX: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want an Ed25519 key", k)
	}
	return pub, nil
}

// WriteKeyPair writes base+".key" (mode 0600) and base+".pub" (mode 0644).
// It refuses to overwrite existing files.
func WriteKeyPair(base string, pub ed25519.PublicKey, priv ed25519.PrivateKey) error {
	privPEM, err := MarshalPrivate(priv)
	if err != nil {
		return err
	}
	pubPEM, err := MarshalPublic(pub)
	if err != nil {
		return err
	}
	if err := writeNew(base+".key", privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(base+".pub", pubPEM, 0o644); err != nil {
		os.Remove(base + ".key")
		return err
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	// The umask may have widened nothing but may have narrowed; set exactly.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("setting mode of %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return f.Close()
}

// LoadPrivate reads a private key file, refusing one that group or others
// can access.
func LoadPrivate(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s has mode %04o: it must not be accessible to group or others (chmod 600 %s)",
			path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	priv, err := ParsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return priv, nil
}

// LoadPublic reads one public key file.
func LoadPublic(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	pub, err := ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// Ring is a set of trusted public keys indexed by key ID.
type Ring map[string]ed25519.PublicKey

// Lookup returns the key with the given ID.
func (r Ring) Lookup(id string) (ed25519.PublicKey, bool) {
	k, ok := r[id]
	return k, ok
}

// IDs returns the key IDs in the ring, sorted.
func (r Ring) IDs() []string {
	ids := make([]string, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// LoadRing reads every *.pub file in dir. A directory with no keys, an
// unreadable key, or a key file writable by group or others is an error:
// a trust store that cannot be trusted is never silently reduced.
func LoadRing(dir string) (Ring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading trusted keys: %w", err)
	}
	ring := Ring{}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".pub") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted key %s: %w", path, err))
			continue
		}
		if fi.Mode().Perm()&0o022 != 0 {
			errs = append(errs, fmt.Errorf("trusted key %s has mode %04o: it must not be writable by group or others",
				path, fi.Mode().Perm()))
			continue
		}
		pub, err := LoadPublic(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ring[ID(pub)] = pub
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(ring) == 0 {
		return nil, fmt.Errorf("no trusted keys (*.pub) in %s: %w", dir, fs.ErrNotExist)
	}
	return ring, nil
}
