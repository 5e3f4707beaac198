package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validPolicy = `version = 1
mode = "enforce"
serial = 3

[[file]]
id = "shadow"
paths = ["/etc/shadow"]
`

// run runs the command line and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Getenv: func(string) string { return "" }}
	code = Main(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixture makes a key pair in keys/ and a valid policy, and returns their
// paths.
func fixture(t *testing.T) (dir, key, pol string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "keygen", "--out", filepath.Join(dir, "keys", "release")); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	return dir, filepath.Join(dir, "keys", "release.key"), writeFile(t, filepath.Join(dir, "policy.toml"), validPolicy)
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "k")
	code, stdout, stderr := run(t, "keygen", "--out", base)
	if code != 0 || !strings.Contains(stdout, "key id:") {
		t.Fatalf("keygen = %d, %q %q", code, stdout, stderr)
	}
	fi, err := os.Stat(base + ".key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, mode %v", err, fi.Mode())
	}
	if _, err := os.Stat(base + ".pub"); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "keygen", "--out", base); code != 1 || !strings.Contains(stderr, "file exists") {
		t.Errorf("keygen over an existing key = %d %q, want a refusal", code, stderr)
	}
	if code, _, _ := run(t, "keygen"); code != 2 {
		t.Errorf("keygen without --out = %d, want 2", code)
	}
}

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.toml"), validPolicy)
	bad := writeFile(t, filepath.Join(dir, "bad.toml"), "version = 1\nmode = \"enforce\"\nserial = 1\n[[exec]]\nid = \"x\"\nsubtrees = [\"/tmp/\", \"tmp\"]\nprotocol = \"tcp\"\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"valid", []string{good}, 0, []string{good + ": ok (mode enforce, serial 3, 1 rule)"}},
		{"invalid", []string{good, bad}, 1, []string{
			good + ": ok",
			bad + `:6:22: subtree "tmp" is not absolute (write "/tmp")`,
			bad + `:7:1: unknown key "protocol" (known keys: id, mode, force, cgroups, exempt_cgroups, paths, subtrees)`,
		}},
		{"missing file", []string{filepath.Join(dir, "nope.toml")}, 1, nil},
		{"no files", nil, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"policy", "check"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, stdout)
				}
			}
		})
	}
}

func TestPolicyShow(t *testing.T) {
	_, _, pol := fixture(t)
	code, stdout, stderr := run(t, "policy", "show", pol)
	if code != 0 || !strings.Contains(stdout, "mode:     enforce") || !strings.Contains(stdout, "shadow") {
		t.Fatalf("show = %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "policy", "show", pol, "--json")
	var c struct {
		Digest string `json:"digest"`
		Rules  []struct {
			ID string `json:"id"`
		} `json:"rules"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &c) != nil || len(c.Digest) != 64 || c.Rules[0].ID != "shadow" {
		t.Fatalf("show --json = %d\n%s", code, stdout)
	}
}

func TestPolicySignVerify(t *testing.T) {
	dir, key, pol := fixture(t)
	keyDir := filepath.Join(dir, "keys")
	if code, stdout, stderr := run(t, "policy", "sign", "--key", key, pol); code != 0 {
		t.Fatalf("sign = %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := run(t, "policy", "verify", "--keys", keyDir, pol)
	if code != 0 || !strings.Contains(stdout, ": ok: signed by key") {
		t.Fatalf("verify = %d\n%s%s", code, stdout, stderr)
	}

	t.Run("policy byte flipped", func(t *testing.T) {
		tampered := filepath.Join(dir, "tampered.toml")
		writeFile(t, tampered, strings.Replace(validPolicy, "shadow\"]", "shadoW\"]", 1))
		sig, _ := os.ReadFile(pol + ".sig")
		writeFile(t, tampered+".sig", string(sig))
		code, _, stderr := run(t, "policy", "verify", "--keys", keyDir, tampered)
		if code != 1 || !strings.Contains(stderr, "policy sha256 mismatch: file has ") {
			t.Errorf("verify of a tampered policy = %d %q", code, stderr)
		}
	})
	t.Run("signature byte flipped", func(t *testing.T) {
		sig, _ := os.ReadFile(pol + ".sig")
		i := bytes.Index(sig, []byte(`"signature":"`)) + len(`"signature":"`) + 5
		if sig[i] == 'A' { // another valid base64 digit, so the change reaches the signature
			sig[i] = 'B'
		} else {
			sig[i] = 'A'
		}
		bad := writeFile(t, filepath.Join(dir, "bad.sig"), string(sig))
		code, _, stderr := run(t, "policy", "verify", "--keys", keyDir, "--sig", bad, pol)
		if code != 1 || !strings.Contains(stderr, "signature does not match key") {
			t.Errorf("verify with a tampered signature = %d %q", code, stderr)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		other := t.TempDir()
		if code, _, _ := run(t, "keygen", "--out", filepath.Join(other, "other")); code != 0 {
			t.Fatal("keygen")
		}
		os.Remove(filepath.Join(other, "other.key"))
		code, _, stderr := run(t, "policy", "verify", "--keys", other, pol)
		if code != 1 || !strings.Contains(stderr, "signed by unknown key") {
			t.Errorf("verify with another key = %d %q", code, stderr)
		}
	})
	t.Run("expired", func(t *testing.T) {
		old := filepath.Join(dir, "old.sig")
		if code, _, stderr := run(t, "policy", "sign", "--key", key, "--not-before", "2020-01-01T00:00:00Z",
			"--not-after", "30d", "--out", old, pol); code != 0 {
			t.Fatalf("sign: %s", stderr)
		}
		code, _, stderr := run(t, "policy", "verify", "--keys", keyDir, "--sig", old, pol)
		if code != 1 || !strings.Contains(stderr, "signature expired at 2020-01-31T00:00:00Z") {
			t.Errorf("verify of an expired signature = %d %q", code, stderr)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		code, _, stderr := run(t, "policy", "verify", "--keys", keyDir, "--last-serial", "4", pol)
		if code != 1 || !strings.Contains(stderr, "policy serial 3 is lower than the last applied serial 4") {
			t.Errorf("verify below the last serial = %d %q", code, stderr)
		}
	})
}

func TestPolicySignRefuses(t *testing.T) {
	dir, key, _ := fixture(t)
	bad := writeFile(t, filepath.Join(dir, "bad.toml"), "version = 1\nmode = \"enforce\"\nserial = 1\n[[exec]]\nid = \"x\"\nsubtrees = [\"/usr\"]\n")
	code, stdout, stderr := run(t, "policy", "sign", "--key", key, bad)
	if code != 1 || !strings.Contains(stderr, "refusing to sign an invalid policy") || !strings.Contains(stdout, "would break the host") {
		t.Errorf("sign of an invalid policy = %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(bad + ".sig"); err == nil {
		t.Error("a signature was written for an invalid policy")
	}
	good := writeFile(t, filepath.Join(dir, "good.toml"), validPolicy)
	os.Chmod(key, 0o640)
	if code, _, stderr := run(t, "policy", "sign", "--key", key, good); code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("sign with a group-readable key = %d %q", code, stderr)
	}
	if code, _, _ := run(t, "policy", "sign", good); code != 2 {
		t.Errorf("sign without --key = %d, want 2", code)
	}
	if code, _, _ := run(t, "policy", "sign", "--key", key, "--not-after", "soon", good); code != 2 {
		t.Errorf("sign with a bad --not-after = %d, want 2", code)
	}
}
