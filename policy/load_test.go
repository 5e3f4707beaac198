package policy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

func TestCheckSerial(t *testing.T) {
	tests := []struct {
		serial, last uint64
		ok           bool
	}{
		{0, 0, true}, {5, 5, true}, {6, 5, true}, {4, 5, false}, {0, 1, false},
	}
	for _, tt := range tests {
		err := CheckSerial(tt.serial, tt.last)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrRollback)) {
			t.Errorf("CheckSerial(%d, %d) = %v", tt.serial, tt.last, err)
		}
	}
	want := "policy serial rollback: policy serial 4 is lower than the last applied serial 5"
	if err := CheckSerial(4, 5); err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestLoadVerified(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	ring := keys.Ring{keys.ID(pub): pub}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	const rules = "[[file]]\nid = \"a\"\npaths = [\"/etc/shadow\"]\n"
	enforce := head + rules
	audit := "version = 1\nmode = \"audit\"\nserial = 1\n" + rules
	auditOverride := audit + "mode = \"enforce\"\n"

	tests := []struct {
		name    string
		policy  string
		sig     string // "" none, "good", "bad"
		last    uint64
		wantErr error
		msg     string
		warns   int
	}{
		{name: "enforce signed", policy: enforce, sig: "good"},
		{name: "enforce unsigned", policy: enforce, wantErr: ErrUnsigned,
			msg: "an enforcing policy must be signed (aegisbpf policy sign)"},
		{name: "audit unsigned", policy: audit, warns: 1},
		{name: "audit policy with an enforcing rule, unsigned", policy: auditOverride, wantErr: ErrUnsigned},
		{name: "audit with a bad signature", policy: audit, sig: "bad", wantErr: sign.ErrDigestMismatch,
			msg: "policy sha256 mismatch"},
		{name: "signed serial differs", policy: enforce, sig: "serial", wantErr: sign.ErrSerialMismatch,
			msg: "policy serial mismatch: policy has 1, signature covers 2"},
		{name: "bad signature on an invalid policy", policy: "version = 1\n", sig: "bad", wantErr: sign.ErrDigestMismatch},
		{name: "rollback", policy: enforce, sig: "good", last: 2, wantErr: ErrRollback,
			msg: "policy serial 1 is lower than the last applied serial 2"},
		{name: "invalid", policy: head + "[[file]]\nid = \"a\"\n", msg: `p.toml:4:1: file rule "a" has no targets`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "p.toml")
			if err := os.WriteFile(path, []byte(tt.policy), 0o644); err != nil {
				t.Fatal(err)
			}
			switch tt.sig {
			case "good", "bad", "serial":
				signed, serial := []byte(tt.policy), uint64(1)
				if tt.sig == "bad" {
					signed = append(signed, '\n')
				}
				if tt.sig == "serial" {
					serial = 2
				}
				env, err := sign.Sign(priv, signed, serial, now.Add(-time.Hour), now.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path+".sig", env, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LoadVerified(path, "", ring, now, tt.last)
			if tt.wantErr == nil && tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Warnings) != tt.warns || (tt.sig == "good") != (got.Signature != nil) {
					t.Errorf("warnings %q, signature %v", got.Warnings, got.Signature)
				}
				return
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("LoadVerified = %v, want %v containing %q", err, tt.wantErr, tt.msg)
			}
		})
	}
	t.Run("problems are reachable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "p.toml")
		os.WriteFile(path, []byte("version = 1\n"), 0o644)
		_, err := LoadVerified(path, "", ring, now, 0)
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 2 {
			t.Errorf("LoadVerified = %v, want 2 Problems", err)
		}
	})
}
