package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	policy = []byte("version = 1\nmode = \"enforce\"\nserial = 9\n")
)

// testKey returns a fixed key pair, so envelopes are reproducible.
func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func ringOf(pubs ...ed25519.PublicKey) keys.Ring {
	r := keys.Ring{}
	for _, p := range pubs {
		r[keys.ID(p)] = p
	}
	return r
}

func mustSign(t testing.TB, priv ed25519.PrivateKey, pol []byte, serial uint64) []byte {
	t.Helper()
	env, err := Sign(priv, pol, serial, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// forge signs arbitrary statement bytes, to test what Parse refuses.
func forge(priv ed25519.PrivateKey, stmt string) []byte {
	return encodeEnvelope([]byte(stmt), ed25519.Sign(priv, []byte(stmt)))
}

func TestRoundTrip(t *testing.T) {
	pub, priv := testKey(1)
	env := mustSign(t, priv, policy, 9)
	st, err := Verify(env, policy, 9, ringOf(pub), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"aegisbpf.policy.signature/v1","policy_sha256":"` + st.PolicySHA256 +
		`","serial":9,"not_before":"2026-01-01T00:00:00Z","not_after":"2026-01-02T00:00:00Z","key_id":"` + keys.ID(pub) + `"}`
	parsed, _ := Parse(env)
	if string(parsed.StatementBytes) != want {
		t.Errorf("statement:\n%s\nwant:\n%s", parsed.StatementBytes, want)
	}
	if !bytes.HasPrefix(env, []byte(`{"statement":"`)) || !bytes.HasSuffix(env, []byte("\"}\n")) {
		t.Errorf("envelope layout: %s", env)
	}
}

func TestVerifyFailures(t *testing.T) {
	pub, priv := testKey(1)
	pub2, priv2 := testKey(2)
	id, id2 := keys.ID(pub), keys.ID(pub2)
	good := mustSign(t, priv, policy, 9)
	parsed, _ := Parse(good)
	stmt := string(parsed.StatementBytes)
	sig2 := ed25519.Sign(priv2, parsed.StatementBytes)

	tests := []struct {
		name   string
		env    []byte
		policy []byte
		serial uint64
		ring   keys.Ring
		now    time.Time
		kind   error
		msg    string
	}{
		{name: "unknown key", env: good, ring: ringOf(pub2), kind: ErrUnknownKey,
			msg: "signed by unknown key " + id + ", trusted: " + id2},
		{name: "empty ring", env: good, ring: keys.Ring{}, kind: ErrUnknownKey,
			msg: "signed by unknown key " + id + ", trusted: none"},
		{name: "signature by another key", env: encodeEnvelope(parsed.StatementBytes, sig2), kind: ErrBadSignature,
			msg: "signature does not match key " + id},
		{name: "policy changed", env: good, policy: append([]byte("#\n"), policy...), kind: ErrDigestMismatch,
			msg: "policy sha256 mismatch: file has "},
		{name: "serial differs", env: good, serial: 10, kind: ErrSerialMismatch,
			msg: "policy serial mismatch: policy has 10, signature covers 9"},
		{name: "not yet valid", env: good, now: t0.Add(-time.Second), kind: ErrNotYetValid,
			msg: "signature not valid before 2026-01-01T00:00:00Z (now 2025-12-31T23:59:59Z)"},
		{name: "expired", env: good, now: t0.Add(24*time.Hour + time.Second), kind: ErrExpired,
			msg: "signature expired at 2026-01-02T00:00:00Z (now 2026-01-02T00:00:01Z)"},
		{name: "not JSON", env: []byte("hello"), kind: ErrMalformed,
			msg: "malformed signature file: decoding signature file: invalid character"},
		{name: "unknown envelope field", env: []byte(`{"statement":"","signature":"","x":1}`), kind: ErrMalformed,
			msg: `malformed signature file: decoding signature file: json: unknown field "x"`},
		{name: "envelope not canonical", env: bytes.Replace(good, []byte(`","signature"`), []byte(`", "signature"`), 1),
			kind: ErrMalformed, msg: "malformed signature file: signature file is not in canonical form"},
		{name: "missing newline", env: bytes.TrimSuffix(good, []byte("\n")), kind: ErrMalformed,
			msg: "malformed signature file: signature file is not in canonical form"},
		{name: "bad base64", env: []byte(`{"statement":"!!","signature":""}` + "\n"), kind: ErrMalformed,
			msg: "malformed signature file: decoding statement base64: illegal base64 data at input byte 0"},
		{name: "short signature", env: encodeEnvelope(parsed.StatementBytes, sig2[:63]), kind: ErrMalformed,
			msg: "malformed signature file: signature is 63 bytes, an Ed25519 signature is 64"},
		{name: "statement not canonical", env: forge(priv, strings.Replace(stmt, `,"serial"`, `, "serial"`, 1)),
			kind: ErrMalformed, msg: "malformed signature file: statement is not in canonical form"},
		{name: "statement fields reordered", env: forge(priv, `{"policy_sha256":"`+parsed.Statement.PolicySHA256+`","type":"aegisbpf.policy.signature/v1","serial":9,"not_before":"2026-01-01T00:00:00Z","not_after":"2026-01-02T00:00:00Z","key_id":"`+id+`"}`),
			kind: ErrMalformed, msg: "malformed signature file: statement is not in canonical form"},
		{name: "duplicate statement field", env: forge(priv, strings.Replace(stmt, `{"type"`, `{"serial":1,"type"`, 1)),
			kind: ErrMalformed, msg: "malformed signature file: statement is not in canonical form"},
		{name: "unknown statement field", env: forge(priv, strings.Replace(stmt, `}`, `,"x":1}`, 1)),
			kind: ErrMalformed, msg: `malformed signature file: decoding statement: json: unknown field "x"`},
		{name: "wrong type", env: forge(priv, strings.Replace(stmt, "signature/v1", "signature/v2", 1)),
			kind: ErrMalformed, msg: `malformed signature file: statement type is "aegisbpf.policy.signature/v2", want "aegisbpf.policy.signature/v1"`},
		{name: "uppercase digest", env: forge(priv, strings.Replace(stmt, parsed.Statement.PolicySHA256, strings.ToUpper(parsed.Statement.PolicySHA256), 1)),
			kind: ErrMalformed, msg: "is not 64 lowercase hex digits"},
		{name: "window reversed", env: forge(priv, strings.Replace(stmt, "2026-01-02T00:00:00Z", "2025-01-02T00:00:00Z", 1)),
			kind: ErrMalformed, msg: "malformed signature file: statement not_after 2025-01-02T00:00:00Z is not after not_before 2026-01-01T00:00:00Z"},
		{name: "time with offset", env: forge(priv, strings.Replace(stmt, "2026-01-02T00:00:00Z", "2026-01-02T01:00:00+01:00", 1)),
			kind: ErrMalformed, msg: `statement not_after: "2026-01-02T01:00:00+01:00" is not RFC 3339 UTC to the second, e.g. "2026-01-02T00:00:00Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, serial, ring, now := policy, uint64(9), ringOf(pub), t0.Add(time.Hour)
			if tt.policy != nil {
				pol = tt.policy
			}
			if tt.serial != 0 {
				serial = tt.serial
			}
			if tt.ring != nil {
				ring = tt.ring
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			_, err := Verify(tt.env, pol, serial, ring, now)
			if err == nil || !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Verify = %v\nwant %v containing %q", err, tt.kind, tt.msg)
			}
		})
	}
}

// TestEveryByteMatters flips each byte of the signature file and of the
// policy in turn; every change must fail verification.
func TestEveryByteMatters(t *testing.T) {
	pub, priv := testKey(1)
	env := mustSign(t, priv, policy, 9)
	ring, now := ringOf(pub), t0.Add(time.Hour)
	for i := range env {
		for _, bit := range []byte{0x01, 0x20} {
			bad := bytes.Clone(env)
			bad[i] ^= bit
			if _, err := Verify(bad, policy, 9, ring, now); err == nil {
				t.Errorf("envelope byte %d ^ %#x still verifies", i, bit)
			}
		}
	}
	for i := range policy {
		bad := bytes.Clone(policy)
		bad[i] ^= 0x01
		if _, err := Verify(env, bad, 9, ring, now); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("policy byte %d flipped: %v", i, err)
		}
	}
}

func TestSignRefuses(t *testing.T) {
	_, priv := testKey(1)
	if _, err := Sign(priv, policy, 1, t0, t0); err == nil || !strings.Contains(err.Error(), "is not after not_before") {
		t.Errorf("Sign with an empty window = %v", err)
	}
	if _, err := Sign(priv[:10], policy, 1, t0, t0.Add(time.Hour)); err == nil {
		t.Error("Sign with a truncated key succeeded")
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.sig")
	if err := os.WriteFile(big, bytes.Repeat([]byte{'x'}, MaxEnvelopeLen+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "larger than 4096 bytes") {
		t.Errorf("ReadFile of an oversized file = %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "none.sig")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file = %v", err)
	}
}
