package layer

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHashFileSize4K(t *testing.T) {
	// Sizes marked "measured" are what veritysetup 2.6.1 wrote.
	tests := []struct {
		blocks uint64
		want   int64
	}{
		{1, 4096},       // measured: no tree level, the root hash is the block's
		{2, 8192},       // measured
		{65, 8192},      // measured
		{128, 8192},     // one full hash block
		{129, 16384},    // two leaves and a root block
		{130, 16384},    // measured
		{2442, 90112},   // measured
		{2561, 94208},   // measured
		{16384, 532480}, // 128 leaves + 1
		{16385, 544768}, // 129 leaves + 2 + 1
		{1 << 62, -1},   // the tree alone would pass 2^63 bytes
		{^uint64(0), -1},
	}
	for _, tt := range tests {
		got, err := hashFileSize4K(tt.blocks)
		if tt.want == -1 {
			if err == nil {
				t.Errorf("hashFileSize4K(%d) = %d, want an overflow error", tt.blocks, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("hashFileSize4K(%d) = %d, %v; want %d", tt.blocks, got, err, tt.want)
		}
	}
	if _, err := hashFileSize4K(0); err == nil {
		t.Error("hashFileSize4K(0) succeeded")
	}
}

// superblock returns a valid superblock for the test.
func superblock() []byte {
	b := make([]byte, sbSize)
	copy(b, sbMagic)
	le := binary.LittleEndian
	le.PutUint32(b[sbOffVersion:], 1)
	le.PutUint32(b[sbOffHashType:], 1)
	copy(b[sbOffUUID:], []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x8d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef})
	copy(b[sbOffAlgorithm:], "sha256")
	le.PutUint32(b[sbOffDataBlock:], 4096)
	le.PutUint32(b[sbOffHashBlock:], 4096)
	le.PutUint64(b[sbOffDataBlocks:], 65)
	le.PutUint16(b[sbOffSaltSize:], 4)
	copy(b[sbOffSalt:], []byte{0xde, 0xad, 0xbe, 0xef})
	return b
}

func TestParseVeritySuperblock(t *testing.T) {
	sb, err := parseVeritySuperblock(superblock())
	if err != nil {
		t.Fatal(err)
	}
	want := veritySuperblock{Version: 1, HashType: 1, UUID: "01234567-89ab-8def-8123-456789abcdef", Algorithm: "sha256",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 65, Salt: "deadbeef"}
	if *sb != want {
		t.Errorf("got %+v\nwant %+v", *sb, want)
	}
	v := Verity{HashAlgorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 65, Salt: "deadbeef", UUID: want.UUID}
	if err := sb.check(v, 8192); err != nil {
		t.Errorf("check: %v", err)
	}
	if err := sb.check(v, 4096); err == nil || !strings.Contains(err.Error(), "hash tree file has 4096 bytes, a tree over 65 data blocks has 8192") {
		t.Errorf("check with a short file: %v", err)
	}
	v.Salt, v.DataBlocks = "00", 66
	err = sb.check(v, 8192)
	for _, s := range []string{"salt is deadbeef, manifest says 00", "data blocks is 65, manifest says 66"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("check with another salt and size: %v, want %q", err, s)
		}
	}

	bad := []struct {
		name   string
		change func(b []byte) []byte
		want   string
	}{
		{"short", func(b []byte) []byte { return b[:100] }, "100 bytes, need 512"},
		{"magic", func(b []byte) []byte { b[0] = 'V'; return b }, "no \"verity\" signature"},
		{"version", func(b []byte) []byte { b[sbOffVersion] = 2; return b }, "version 2"},
		{"algorithm", func(b []byte) []byte { copy(b[sbOffAlgorithm:sbOffDataBlock], bytes.Repeat([]byte("a"), 32)); return b }, "not NUL-terminated"},
		{"empty algorithm", func(b []byte) []byte { b[sbOffAlgorithm] = 0; return b }, "empty"},
		{"salt size", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[sbOffSaltSize:], 257); return b }, "salt size 257"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseVeritySuperblock(tt.change(superblock()))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseVeritySuperblock(f *testing.F) {
	f.Add(superblock())
	f.Add(make([]byte, sbSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := parseVeritySuperblock(b)
		if err != nil {
			return
		}
		if len(sb.Salt) > 2*sbSaltMax || sb.Version != 1 || sb.Algorithm == "" {
			t.Fatalf("accepted an invalid superblock: %+v", sb)
		}
	})
}

func TestCheckPlainName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"aegisbpf_1.0.0.erofs", true},
		{"a", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../aegisbpf_1.0.0.erofs", false},
		{"/etc/shadow", false},
		{"sub/file", false},
		{`..\file`, false},
		{"file\x00", false},
		{".hidden", false},
		{strings.Repeat("a", 256), false},
		{"\xff", false},
	}
	for _, tt := range tests {
		if err := checkPlainName(tt.name); (err == nil) != tt.ok {
			t.Errorf("checkPlainName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestSignaturePath(t *testing.T) {
	tests := []struct {
		manifest, want, err string
	}{
		{"/l/aegisbpf_1.0.0.manifest.json", "/l/aegisbpf_1.0.0.manifest.sig", ""},
		{"aegisbpf_2.manifest.json", "aegisbpf_2.manifest.sig", ""},
		{"/l/aegisbpf_1.0.0.manifest.json.bak", "", "is not aegisbpf_<version>.manifest.json"},
		{"/l/manifest.json", "", "is not aegisbpf_<version>.manifest.json"},
		{"/l/aegisbpf_.manifest.json", "", "is not aegisbpf_<version>.manifest.json"},
		{"/l/aegisbpf_UPPER.manifest.json", "", "is not aegisbpf_<version>.manifest.json"},
	}
	for _, tt := range tests {
		got, err := SignaturePath(tt.manifest)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("SignaturePath(%q) = %q, %v; want error %q", tt.manifest, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("SignaturePath(%q) = %q, %v; want %q", tt.manifest, got, err, tt.want)
		}
	}
}

// elfHeader returns a 64-bit little-endian ELF header for machine, with
// one program header of type progType when progType is non-zero.
func elfHeader(class byte, machine uint16, progType uint32) []byte {
	b := make([]byte, 64+56)
	copy(b, []byte{0x7f, 'E', 'L', 'F', class, 1, 1})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], machine)
	le.PutUint32(b[20:], 1)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[58:], 64)
	if progType != 0 {
		le.PutUint64(b[32:], 64) // e_phoff
		le.PutUint16(b[56:], 1)  // e_phnum
		le.PutUint32(b[64:], progType)
	}
	return b
}

func TestAgentArchitecture(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
		err  string
	}{
		{"x86-64", elfHeader(2, 62, 0), "x86-64", ""},
		{"arm64", elfHeader(2, 183, 0), "arm64", ""},
		{"static with a load segment", elfHeader(2, 62, 1), "x86-64", ""},
		{"dynamic", elfHeader(2, 62, 3), "", "dynamically linked"},
		{"32-bit", elfHeader(1, 3, 0), "", "want a 64-bit executable"},
		{"unknown machine", elfHeader(2, 2, 0), "", "does not map to a systemd architecture"},
		{"script", []byte("#!/bin/sh\nexit 0\n"), "", "not an ELF file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := agentArchitecture(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestExtensionReleaseGolden(t *testing.T) {
	got := extensionRelease("1.2.3", "x86-64")
	golden := filepath.Join("testdata", "extension-release.aegisbpf.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("extension-release differs from %s:\n%s\nwant:\n%s", golden, got, want)
	}
}
