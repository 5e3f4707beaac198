package layer_test

import (
	"bytes"
	"encoding/base64"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

func sum(c byte) string { return strings.Repeat(string(c), 64) }

// goldenManifest is a fixed, valid manifest.
func goldenManifest() *layer.Manifest {
	return &layer.Manifest{
		FormatVersion:   layer.FormatVersion,
		Name:            "aegisbpf",
		Version:         "1.2.3",
		Serial:          42,
		SourceDateEpoch: 1700000000,
		BuildTime:       "2023-11-14T22:13:20Z",
		Architecture:    "x86-64",
		Artifacts: []layer.Artifact{
			{Name: "aegisbpf_1.2.3.erofs", Size: 8192, SHA256: sum('1')},
			{Name: "aegisbpf_1.2.3.verity", Size: 8192, SHA256: sum('2')},
		},
		Verity: layer.Verity{
			RootHash: sum('3'), HashAlgorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096,
			DataBlocks: 2, Salt: sum('4'), UUID: "01234567-89ab-8def-8123-456789abcdef",
		},
		ErofsUUID:    "fedcba98-7654-8210-8edc-ba9876543210",
		AgentSHA256:  sum('a'),
		PolicySHA256: sum('b'),
		PolicyDigest: "sha256:" + sum('c'),
		Files: []layer.File{
			{Path: "/usr/bin/aegisbpf", Mode: "0755", Size: 100, SHA256: sum('a')},
			{Path: "/usr/lib/extension-release.d/extension-release.aegisbpf", Mode: "0644", Size: 10, SHA256: sum('d')},
			{Path: "/usr/lib/systemd/system/aegisbpf.service", Mode: "0644", Size: 10, SHA256: sum('e')},
			{Path: "/usr/share/aegisbpf/policy.toml", Mode: "0644", Size: 10, SHA256: sum('b')},
			{Path: "/usr/share/aegisbpf/policy.toml.sig", Mode: "0644", Size: 10, SHA256: sum('f')},
		},
		Tools: layer.Tools{MkfsErofs: "1.5.0", Veritysetup: "2.6.1"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testenv.Golden(t, filepath.Join("testdata", name), got, *layer.Update)
}

func TestManifestGolden(t *testing.T) {
	data, err := goldenManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "manifest.golden.json", data)
	if !bytes.HasSuffix(data, []byte("}\n")) {
		t.Error("canonical manifest does not end with a newline")
	}
	m, err := layer.ParseManifest(data)
	if err != nil {
		t.Fatalf("ParseManifest of the canonical encoding: %v", err)
	}
	if !reflect.DeepEqual(m, goldenManifest()) {
		t.Errorf("round trip changed the manifest:\n%+v", m)
	}
}

func TestSignatureGolden(t *testing.T) {
	data, err := goldenManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, priv := layertest.Key("golden")
	sig, err := layer.Sign(priv, data)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "manifest.golden.sig", sig)
	s, raw, err := layer.ParseSignature(sig)
	if err != nil {
		t.Fatal(err)
	}
	if s.Algorithm != "ed25519" || len(s.KeyID) != 16 || len(raw) != 64 {
		t.Errorf("parsed signature %+v with %d raw bytes", s, len(raw))
	}
}

func TestParseManifestRejects(t *testing.T) {
	canon, err := goldenManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	text := string(canon)
	replace := func(old, new string) []byte {
		if !strings.Contains(text, old) {
			t.Fatalf("golden manifest has no %q", old)
		}
		return []byte(strings.Replace(text, old, new, 1))
	}
	mutate := func(f func(m *layer.Manifest)) []byte {
		m := goldenManifest()
		f(m)
		// Encode without validation: the encoding is what a signer made.
		var buf bytes.Buffer
		if err := encodeUnchecked(&buf, m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"unknown field", replace(`"serial": 42,`, `"serial": 42, "extra": 1,`), `unknown field "extra"`},
		{"second object", append(append([]byte{}, canon...), "{}"...), "data after the JSON object"},
		{"not canonical spacing", replace(`"serial": 42`, `"serial":42`), "not in canonical form"},
		{"duplicate key", replace(`"serial": 42,`, `"serial": 1, "serial": 42,`), "not in canonical form"},
		{"key in another case", replace(`"serial": 42`, `"Serial": 42`), "not in canonical form"},
		{"escaped key", replace(`"serial": 42`, `"s\u0065rial": 42`), "not in canonical form"},
		{"no final newline", bytes.TrimSuffix(canon, []byte("\n")), "not in canonical form"},
		{"format version", replace(`"format_version": 1`, `"format_version": 2`), "format_version: 2, this build reads only 1"},
		{"negative serial", replace(`"serial": 42`, `"serial": -1`), "cannot unmarshal"},
		{"not JSON", []byte("serial = 42\n"), "decoding manifest"},
		{"path traversal", mutate(func(m *layer.Manifest) { m.Artifacts[0].Name = "../aegisbpf_1.2.3.erofs" }), `artifacts[0].name: "../aegisbpf_1.2.3.erofs" is not a plain file name`},
		{"absolute artifact", mutate(func(m *layer.Manifest) { m.Artifacts[1].Name = "/dev/sda" }), `artifacts[1].name: "/dev/sda" is not a plain file name`},
		{"other artifact", mutate(func(m *layer.Manifest) { m.Artifacts[1].Name = "aegisbpf_9.verity" }), "names [\"aegisbpf_1.2.3.erofs\" \"aegisbpf_9.verity\"], want exactly"},
		{"extra artifact", mutate(func(m *layer.Manifest) {
			m.Artifacts = append(m.Artifacts, layer.Artifact{Name: "x", Size: 1, SHA256: sum('9')})
		}), "want exactly"},
		{"serial 0", mutate(func(m *layer.Manifest) { m.Serial = 0 }), "serial: 0"},
		{"build time", mutate(func(m *layer.Manifest) { m.BuildTime = "2024-01-01T00:00:00Z" }), "build_time"},
		{"version", mutate(func(m *layer.Manifest) { m.Version = "1/2" }), "field version"},
		{"root hash", mutate(func(m *layer.Manifest) { m.Verity.RootHash = "abc" }), "verity.root_hash"},
		{"hash algorithm", mutate(func(m *layer.Manifest) { m.Verity.HashAlgorithm = "sha1" }), "verity.hash_algorithm"},
		{"block size", mutate(func(m *layer.Manifest) { m.Verity.DataBlockSize = 512 }), "verity.data_block_size"},
		{"data blocks", mutate(func(m *layer.Manifest) { m.Verity.DataBlocks = 1 }), "1 blocks of 4096 bytes do not cover the 8192 bytes"},
		{"agent sha mismatch", mutate(func(m *layer.Manifest) { m.AgentSHA256 = sum('0') }), "agent_sha256"},
		{"policy digest", mutate(func(m *layer.Manifest) { m.PolicyDigest = "two words" }), "policy_digest"},
		{"missing service", mutate(func(m *layer.Manifest) { m.Files = append(m.Files[:2], m.Files[3:]...) }), "aegisbpf.service is missing"},
		{"foreign file", mutate(func(m *layer.Manifest) {
			m.Files = append(m.Files, layer.File{Path: "/usr/share/x", Mode: "0644", SHA256: sum('0')})
		}), `"/usr/share/x" is not a file a layer may hold`},
		{"agent mode", mutate(func(m *layer.Manifest) { m.Files[0].Mode = "4755" }), `"4755" for /usr/bin/aegisbpf, want "0755"`},
		{"unsorted files", mutate(func(m *layer.Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] }), "not sorted by path"},
		{"no tools", mutate(func(m *layer.Manifest) { m.Tools = layer.Tools{} }), "field tools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := layer.ParseManifest(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseManifest: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseSignatureRejects(t *testing.T) {
	_, priv := layertest.Key("golden")
	sig, err := layer.Sign(priv, []byte("manifest\n"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(sig)
	s, _, err := layer.ParseSignature(sig)
	if err != nil {
		t.Fatal(err)
	}
	short := base64.StdEncoding.EncodeToString(make([]byte, 63))
	tests := []struct {
		name string
		data string
		want string
	}{
		{"unknown field", strings.Replace(text, `"algorithm"`, `"extra": 1, "algorithm"`, 1), `unknown field "extra"`},
		{"algorithm", strings.Replace(text, `"ed25519"`, `"rsa"`, 1), `algorithm "rsa", want "ed25519"`},
		{"key id", strings.Replace(text, s.KeyID, "XYZ", 1), `key_id "XYZ"`},
		{"base64", strings.Replace(text, s.Signature, "!!!", 1), "not standard base64"},
		{"length", strings.Replace(text, s.Signature, short, 1), "signature has 63 bytes, want 64"},
		{"trailing", text + "{}", "data after the JSON object"},
		{"not canonical", strings.Replace(text, "\n  ", "\n    ", 1), "not in canonical form"},
		{"truncated", text[:len(text)/2], "decoding signature file"},
		{"empty", "", "decoding signature file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := layer.ParseSignature([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	canon, err := goldenManifest().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(canon)
	f.Add([]byte("{}"))
	f.Add([]byte(`{"format_version": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := layer.ParseManifest(data)
		if err != nil {
			return
		}
		// Whatever is accepted is canonical and valid.
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted manifest does not validate: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted manifest is not canonical")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	_, priv := layertest.Key("fuzz")
	sig, err := layer.Sign(priv, []byte("m"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add([]byte(`{"algorithm":"ed25519"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, raw, err := layer.ParseSignature(data)
		if err != nil {
			return
		}
		if s.Algorithm != "ed25519" || len(raw) != 64 || len(s.KeyID) != 16 {
			t.Fatalf("accepted %+v with %d raw bytes", s, len(raw))
		}
	})
}
