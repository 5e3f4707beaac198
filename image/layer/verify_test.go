package layer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// encodeUnchecked encodes m the canonical way, without validating it: what
// a careless or hostile signer could produce.
func encodeUnchecked(w io.Writer, m *layer.Manifest) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}

// testLayer is a built layer copied into its own directory.
type testLayer struct {
	dir      string
	version  string
	manifest string // path
	ring     keys.Ring
}

func (l *testLayer) path(suffix string) string {
	return filepath.Join(l.dir, "aegisbpf_"+l.version+suffix)
}

// copyLayer copies the four files of a built layer into a new directory.
func copyLayer(t *testing.T, res *layer.BuildResult, ring keys.Ring) *testLayer {
	t.Helper()
	dir := t.TempDir()
	for _, p := range outputs(res) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := res.Manifest.Version
	return &testLayer{dir: dir, version: v, manifest: filepath.Join(dir, layer.ManifestName(v)), ring: ring}
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncateHalf(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// editManifest rewrites the manifest's text and signs it again with the
// trusted key, so only the manifest's own checks can catch the change.
func editManifest(t *testing.T, l *testLayer, edit func(string) string) {
	t.Helper()
	data, err := os.ReadFile(l.manifest)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(data))
	if out == string(data) {
		t.Fatal("the edit changed nothing")
	}
	if err := os.WriteFile(l.manifest, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	resign(t, l)
}

func resign(t *testing.T, l *testLayer) {
	t.Helper()
	data, err := os.ReadFile(l.manifest)
	if err != nil {
		t.Fatal(err)
	}
	_, priv := layertest.Key(layertest.DefaultSeed)
	sig, err := layer.Sign(priv, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.path(".manifest.sig"), sig, 0o644); err != nil {
		t.Fatal(err)
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("manifest has no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

// TestVerifyTamper builds one layer, then for each case copies it, damages
// the copy, and wants a precise failure of the given kind from Verify, and
// from VerifyHashes unless only the hash tree check can see the damage.
func TestVerifyTamper(t *testing.T) {
	res, in := buildLayer(t, layertest.Config{})
	ring := keys.Ring{keys.ID(in.PublicKey): in.PublicKey}
	otherPub, _ := layertest.Key("someone else")
	m := res.Manifest
	erofs, verity := m.Erofs().Name, m.VerityArtifact().Name

	tests := []struct {
		name       string
		damage     func(t *testing.T, l *testLayer)
		kind       error
		want       string
		notExist   bool
		onlyVerity bool // VerifyHashes cannot see it; Verify must
	}{
		{name: "flip byte in erofs data",
			damage: func(t *testing.T, l *testLayer) { flipByte(t, l.path(".erofs"), m.Erofs().Size/2) },
			kind:   layer.ErrCorrupt, want: "artifact " + erofs + " has sha256 "},
		{name: "flip byte in hash tree",
			damage: func(t *testing.T, l *testLayer) { flipByte(t, l.path(".verity"), 4096+17) },
			kind:   layer.ErrCorrupt, want: "artifact " + verity + " has sha256 "},
		{name: "flip byte in manifest",
			damage: func(t *testing.T, l *testLayer) { flipByte(t, l.manifest, 40) },
			kind:   layer.ErrUntrusted, want: "does not match the manifest bytes"},
		{name: "flip byte in signature",
			damage: func(t *testing.T, l *testLayer) {
				data, _ := os.ReadFile(l.path(".manifest.sig"))
				s, raw, err := layer.ParseSignature(data)
				if err != nil {
					t.Fatal(err)
				}
				raw[10] ^= 0x01
				out := strings.Replace(string(data), s.Signature, base64.StdEncoding.EncodeToString(raw), 1)
				os.WriteFile(l.path(".manifest.sig"), []byte(out), 0o644)
			},
			kind: layer.ErrUntrusted, want: "does not match the manifest bytes"},
		{name: "truncate erofs",
			damage: func(t *testing.T, l *testLayer) { truncateHalf(t, l.path(".erofs")) },
			kind:   layer.ErrCorrupt, want: "artifact " + erofs + " has "},
		{name: "truncate hash tree",
			damage: func(t *testing.T, l *testLayer) { truncateHalf(t, l.path(".verity")) },
			kind:   layer.ErrCorrupt, want: "artifact " + verity + " has "},
		{name: "truncate manifest",
			damage: func(t *testing.T, l *testLayer) { truncateHalf(t, l.manifest) },
			kind:   layer.ErrUntrusted, want: "does not match the manifest bytes"},
		{name: "truncate signature",
			damage: func(t *testing.T, l *testLayer) { truncateHalf(t, l.path(".manifest.sig")) },
			kind:   layer.ErrUntrusted, want: "decoding signature file"},
		{name: "wrong key",
			damage: func(t *testing.T, l *testLayer) { l.ring = keys.Ring{keys.ID(otherPub): otherPub} },
			kind:   layer.ErrUntrusted, want: "signed by key " + res.KeyID + ", which is not trusted"},
		{name: "signed by another key",
			damage: func(t *testing.T, l *testLayer) {
				data, _ := os.ReadFile(l.manifest)
				_, otherPriv := layertest.Key("someone else")
				sig, _ := layer.Sign(otherPriv, data)
				os.WriteFile(l.path(".manifest.sig"), sig, 0o644)
			},
			kind: layer.ErrUntrusted, want: "signed by key " + keys.ID(otherPub) + ", which is not trusted"},
		{name: "missing erofs",
			damage: func(t *testing.T, l *testLayer) { os.Remove(l.path(".erofs")) },
			kind:   layer.ErrCorrupt, want: "artifact " + erofs, notExist: true},
		{name: "missing hash tree",
			damage: func(t *testing.T, l *testLayer) { os.Remove(l.path(".verity")) },
			kind:   layer.ErrCorrupt, want: "artifact " + verity, notExist: true},
		{name: "missing manifest",
			damage: func(t *testing.T, l *testLayer) { os.Remove(l.manifest) },
			kind:   layer.ErrCorrupt, want: "reading manifest", notExist: true},
		{name: "missing signature",
			damage: func(t *testing.T, l *testLayer) { os.Remove(l.path(".manifest.sig")) },
			kind:   layer.ErrUntrusted, want: "reading signature sidecar aegisbpf_1.0.0.manifest.sig (a layer without it is refused)", notExist: true},
		{name: "renamed sidecar",
			damage: func(t *testing.T, l *testLayer) {
				os.Rename(l.path(".manifest.sig"), l.path(".manifest.json.sig"))
			},
			kind: layer.ErrUntrusted, want: "reading signature sidecar aegisbpf_1.0.0.manifest.sig", notExist: true},
		{name: "renamed layer",
			damage: func(t *testing.T, l *testLayer) {
				os.Rename(l.path(".manifest.sig"), filepath.Join(l.dir, "aegisbpf_9.9.9.manifest.sig"))
				os.Rename(l.manifest, filepath.Join(l.dir, "aegisbpf_9.9.9.manifest.json"))
				l.manifest = filepath.Join(l.dir, "aegisbpf_9.9.9.manifest.json")
			},
			kind: layer.ErrMalformed, want: `manifest file name says version "9.9.9", the manifest says "1.0.0"`},
		{name: "manifest not so named",
			damage: func(t *testing.T, l *testLayer) {
				p := filepath.Join(l.dir, "manifest.json")
				os.Rename(l.manifest, p)
				l.manifest = p
			},
			kind: layer.ErrMalformed, want: `manifest file name "manifest.json" is not aegisbpf_<version>.manifest.json`},
		{name: "extra field, signed",
			damage: func(t *testing.T, l *testLayer) {
				editManifest(t, l, func(s string) string { return replaceOnce(t, s, `"serial": 1,`, `"serial": 1, "extra": true,`) })
			},
			kind: layer.ErrMalformed, want: `json: unknown field "extra"`},
		{name: "extra field, not signed",
			damage: func(t *testing.T, l *testLayer) {
				data, _ := os.ReadFile(l.manifest)
				os.WriteFile(l.manifest, []byte(strings.Replace(string(data), `"serial": 1,`, `"serial": 1, "extra": true,`, 1)), 0o644)
			},
			kind: layer.ErrUntrusted, want: "does not match the manifest bytes"},
		{name: "path traversal in artifact name",
			damage: func(t *testing.T, l *testLayer) {
				editManifest(t, l, func(s string) string { return replaceOnce(t, s, `"name": "`+erofs, `"name": "../`+erofs) })
			},
			kind: layer.ErrMalformed, want: `artifacts[0].name: "../` + erofs + `" is not a plain file name`},
		{name: "unsigned field edit, resigned: serial",
			damage: func(t *testing.T, l *testLayer) {
				editManifest(t, l, func(s string) string { return replaceOnce(t, s, `"serial": 1,`, `"serial": 0,`) })
			},
			kind: layer.ErrMalformed, want: "manifest field serial: 0"},
		{name: "artifact is a symlink",
			damage: func(t *testing.T, l *testLayer) {
				p := l.path(".erofs")
				os.Rename(p, p+".real")
				os.Symlink(filepath.Base(p)+".real", p)
			},
			kind: layer.ErrCorrupt, want: "artifact " + erofs + " is a symlink, not a regular file"},
		{name: "artifact is a FIFO",
			damage: func(t *testing.T, l *testLayer) {
				p := l.path(".verity")
				os.Remove(p)
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			kind: layer.ErrCorrupt, want: "artifact " + verity + " is a FIFO, not a regular file"},
		{name: "sidecar is a FIFO",
			damage: func(t *testing.T, l *testLayer) {
				p := l.path(".manifest.sig")
				os.Remove(p)
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			kind: layer.ErrUntrusted, want: "aegisbpf_1.0.0.manifest.sig is a FIFO, not a regular file"},
		{name: "superblock salt differs from the signed manifest",
			damage: func(t *testing.T, l *testLayer) {
				editManifest(t, l, func(s string) string { return replaceOnce(t, s, m.Verity.Salt, sum('5')) })
			},
			kind: layer.ErrCorrupt, want: "hash tree superblock salt is " + m.Verity.Salt + ", manifest says " + sum('5')},
		{name: "root hash differs from the tree",
			damage: func(t *testing.T, l *testLayer) {
				editManifest(t, l, func(s string) string { return replaceOnce(t, s, m.Verity.RootHash, sum('6')) })
			},
			kind: layer.ErrCorrupt, want: "hash tree " + verity + " does not match " + erofs + " and root hash " + sum('6'), onlyVerity: true},
		{name: "erofs data changed and re-hashed by the signer",
			damage: func(t *testing.T, l *testLayer) {
				// A data block of the agent: the third block of the image is
				// past the superblock and the inode table.
				flipByte(t, l.path(".erofs"), 3*4096+100)
				_, newSum, err := hashFileForTest(l.path(".erofs"))
				if err != nil {
					t.Fatal(err)
				}
				editManifest(t, l, func(s string) string { return replaceOnce(t, s, m.Erofs().SHA256, newSum) })
			},
			kind: layer.ErrCorrupt, want: "Verification failed at position", onlyVerity: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := copyLayer(t, res, ring)
			if _, err := layer.Verify(context.Background(), l.manifest, l.ring); err != nil {
				t.Fatalf("the undamaged copy does not verify: %v", err)
			}
			tt.damage(t, l)

			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s accepted the damaged layer", what)
				}
				if !errors.Is(err, tt.kind) {
					t.Errorf("%s: error is not %v: %v", what, tt.kind, err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: error does not say %q:\n%v", what, tt.want, err)
				}
				if tt.notExist != errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: errors.Is(err, fs.ErrNotExist) = %v, want %v", what, !tt.notExist, tt.notExist)
				}
				for _, other := range []error{layer.ErrUntrusted, layer.ErrMalformed, layer.ErrCorrupt} {
					if other != tt.kind && errors.Is(err, other) {
						t.Errorf("%s: error also matches %v", what, other)
					}
				}
			}
			_, err := layer.Verify(context.Background(), l.manifest, l.ring)
			check("Verify", err)
			_, err = layer.VerifyHashes(l.manifest, l.ring)
			if tt.onlyVerity {
				if err != nil {
					t.Errorf("VerifyHashes: %v; want success, only the hash tree check sees this", err)
				}
				return
			}
			check("VerifyHashes", err)
		})
	}
}

func hashFileForTest(p string) (int64, string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, "", err
	}
	return int64(len(data)), sha256Bytes(data), nil
}

func TestVerifyResult(t *testing.T) {
	res, in := buildLayer(t, layertest.Config{Version: "3.0.0-rc.1", Serial: 9})
	ring := keys.Ring{keys.ID(in.PublicKey): in.PublicKey}
	l, err := layer.Verify(context.Background(), res.ManifestPath, ring)
	if err != nil {
		t.Fatal(err)
	}
	if l.KeyID != res.KeyID || l.ErofsPath != res.ErofsPath || l.VerityPath != res.VerityPath || l.SignaturePath != res.SignaturePath {
		t.Errorf("Verify returned %+v, the build wrote %+v", l, res)
	}
	if l.Manifest.Serial != 9 || l.Manifest.Version != "3.0.0-rc.1" {
		t.Errorf("manifest %+v", l.Manifest)
	}
	if _, err := layer.VerifyHashes(res.ManifestPath, keys.Ring{}); !errors.Is(err, layer.ErrUntrusted) {
		t.Errorf("VerifyHashes with an empty ring: %v, want ErrUntrusted", err)
	}
	found, err := layer.FindManifest(filepath.Dir(res.ManifestPath))
	if err != nil || found != res.ManifestPath {
		t.Errorf("FindManifest = %q, %v; want %q", found, err, res.ManifestPath)
	}
}

func TestFindManifest(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  string
		err   string
	}{
		{"one", []string{"aegisbpf_1.manifest.json", "aegisbpf_1.erofs"}, "aegisbpf_1.manifest.json", ""},
		{"none", []string{"aegisbpf_1.erofs", "manifest.json"}, "", "no aegisbpf_*.manifest.json"},
		{"two", []string{"aegisbpf_1.manifest.json", "aegisbpf_2.manifest.json"}, "", "2 manifests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				write(t, filepath.Join(dir, f), "")
			}
			got, err := layer.FindManifest(dir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != filepath.Join(dir, tt.want) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
