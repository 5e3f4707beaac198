package tools

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name, out string
		want      Version
		err       bool
	}{
		{"erofs-utils 1.5", "mkfs.erofs 1.5\n", Version{1, 5, 0}, false},
		{"erofs-utils 1.7", "mkfs.erofs (erofs-utils) 1.7.1\n", Version{1, 7, 1}, false},
		{"erofs-utils 1.8 with a suffix", "mkfs.erofs (erofs-utils) 1.8.2-g1234\n", Version{1, 8, 2}, false},
		{"veritysetup", "veritysetup 2.6.1 flags: UDEV BLKID KEYRING\n", Version{2, 6, 1}, false},
		{"nothing", "usage: [options] FILE DIRECTORY\n", Version{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := erofsVersionRE
			if strings.HasPrefix(tt.out, "veritysetup") {
				re = verityVersionRE
			}
			got, err := parseVersion(re, []byte(tt.out))
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseVersion(%q) = %v, %v; want %v, error %v", tt.out, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b Version
		want bool
	}{
		{Version{1, 4, 9}, Version{1, 5, 0}, true},
		{Version{1, 5, 0}, Version{1, 5, 0}, false},
		{Version{2, 0, 0}, Version{1, 9, 9}, false},
		{Version{2, 2, 9}, Version{2, 3, 0}, true},
	}
	for _, tt := range tests {
		if got := tt.a.Less(tt.b); got != tt.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := CommandLine([]string{"/usr/bin/mkfs.erofs", "-T1700000000", "out dir/x", "", "a'b"})
	want := `/usr/bin/mkfs.erofs -T1700000000 "out dir/x" "" "a'b"`
	if got != want {
		t.Errorf("CommandLine = %s, want %s", got, want)
	}
}

func TestChildEnv(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("LANG", "de_DE.UTF-8")
	env := childEnv()
	for _, kv := range env {
		if strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") || strings.HasPrefix(kv, "LANG=") || kv == "LC_ALL=de_DE.UTF-8" {
			t.Errorf("child environment keeps %s", kv)
		}
	}
	if !slices.Contains(env, "LC_ALL=C") {
		t.Error("child environment has no LC_ALL=C")
	}
}

// fakeTools puts shell scripts named like the tools first on PATH.
func fakeTools(t *testing.T, scripts map[string]string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh for the fake tools")
	}
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestFindChecksVersion(t *testing.T) {
	fakeTools(t, map[string]string{
		"mkfs.erofs":  "echo 'mkfs.erofs 1.4'\necho \"mkfs.erofs: unrecognized option '$1'\" >&2\nexit 1\n",
		"veritysetup": "echo 'veritysetup 2.2.2 flags: UDEV'\n",
	})
	_, err := FindErofs(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is version 1.4.0, need 1.5.0 or newer (Debian package erofs-utils)") {
		t.Errorf("FindErofs with 1.4: %v", err)
	}
	_, err = FindVerity(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is version 2.2.2, need 2.3.0 or newer (Debian package cryptsetup-bin)") {
		t.Errorf("FindVerity with 2.2.2: %v", err)
	}
}

func TestFindMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := FindErofs(context.Background())
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "finding mkfs.erofs (Debian package erofs-utils)") {
		t.Errorf("FindErofs without mkfs.erofs: %v", err)
	}
}

func TestCommandErrorCarriesCommandAndStderr(t *testing.T) {
	fakeTools(t, map[string]string{
		"mkfs.erofs": "echo 'mkfs.erofs 1.5'\n[ \"$1\" = --version ] && exit 1\necho 'mkfs.erofs: failed to open /out: Permission denied' >&2\nexit 1\n",
	})
	e, err := FindErofs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = e.Build(context.Background(), ErofsImage{Source: "/src", Output: "/out dir/x.erofs", Epoch: 1700000000, UUID: "01234567-89ab-8def-8123-456789abcdef"})
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Build: %v, want a *CommandError", err)
	}
	if ce.ExitCode != 1 {
		t.Errorf("exit code %d, want 1", ce.ExitCode)
	}
	for _, want := range []string{
		"making erofs image /out dir/x.erofs",
		e.Path() + ` --quiet -x-1 -T1700000000 -U01234567-89ab-8def-8123-456789abcdef --all-root "/out dir/x.erofs" /src`,
		"exit status 1",
		"failed to open /out: Permission denied",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestBuildRejectsBadArguments(t *testing.T) {
	e := &Erofs{p: program{path: "/nonexistent/mkfs.erofs"}}
	tests := []struct {
		name string
		img  ErofsImage
		want string
	}{
		{"uuid", ErofsImage{Source: "s", Output: "o", UUID: "NOT-A-UUID"}, "is not in lower-case 8-4-4-4-12 form"},
		{"epoch", ErofsImage{Source: "s", Output: "o", Epoch: -1, UUID: "01234567-89ab-8def-8123-456789abcdef"}, "negative timestamp"},
		{"no source", ErofsImage{Output: "o"}, "source and output are required"},
	}
	for _, tt := range tests {
		if err := e.Build(context.Background(), tt.img); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		out     string
		want    VerityStatus
		wantErr bool
	}{
		{"/dev/mapper/l is active.\n  type:        VERITY\n  status:      verified\n", VerityStatus{Active: true}, false},
		{"/dev/mapper/l is active and is in use.\n  status:      corrupted\n", VerityStatus{Active: true, Corrupted: true}, false},
		{"/dev/mapper/l is active.\n  status:      weird\n", VerityStatus{}, true},
		{"nothing\n", VerityStatus{}, true},
	}
	for _, tt := range tests {
		got, err := parseStatus([]byte(tt.out))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseStatus(%q): %v", tt.out, err)
			continue
		}
		if err == nil && (got.Active != tt.want.Active || got.Corrupted != tt.want.Corrupted) {
			t.Errorf("parseStatus(%q) = %+v, want %+v", tt.out, got, tt.want)
		}
	}
}

func TestVerityFormatVerify(t *testing.T) {
	v, err := FindVerity(context.Background())
	if err != nil {
		t.Skipf("needs veritysetup (Debian package cryptsetup-bin): %v", err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, bytes.Repeat([]byte("0123456789abcdef"), 3*4096/16), 0o644); err != nil {
		t.Fatal(err)
	}
	p := VerityParams{HashAlgorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096,
		Salt: strings.Repeat("ab", 32), UUID: "01234567-89ab-8def-8123-456789abcdef"}
	hash := filepath.Join(dir, "hash")
	root, err := v.Format(context.Background(), data, hash, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(root) != 64 {
		t.Fatalf("root hash %q", root)
	}
	if err := v.Verify(context.Background(), data, hash, root); err != nil {
		t.Fatalf("Verify of a fresh tree: %v", err)
	}
	other := strings.Repeat("0", 64)
	if err := v.Verify(context.Background(), data, hash, other); !errors.Is(err, ErrVerityMismatch) {
		t.Errorf("Verify with another root hash: %v, want ErrVerityMismatch", err)
	}
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'X'}, 5000)
	f.Close()
	err = v.Verify(context.Background(), data, hash, root)
	if !errors.Is(err, ErrVerityMismatch) || !strings.Contains(err.Error(), "Verification failed at position 4096") {
		t.Errorf("Verify of changed data: %v, want ErrVerityMismatch at position 4096", err)
	}
	if _, err := v.Format(context.Background(), data, hash, VerityParams{HashAlgorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, Salt: "xyz", UUID: p.UUID}); err == nil {
		t.Error("Format accepted a salt that is not hex")
	}
}
