package sign

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzEnvelope feeds arbitrary signature files to Parse and Verify. Neither
// may panic; a file Parse accepts must be canonical; Verify may accept only
// the one genuine statement; every error must say which check failed.
func FuzzEnvelope(f *testing.F) {
	pub, priv := testKey(1)
	ring, now := ringOf(pub), t0.Add(time.Hour)
	good := mustSign(f, priv, policy, 9)
	genuine, _ := Parse(good)
	f.Add(good)
	f.Add(forge(priv, string(genuine.StatementBytes)+" "))
	f.Add([]byte(`{"statement":"","signature":""}` + "\n"))
	f.Add([]byte("{}"))
	kinds := []error{ErrMalformed, ErrUnknownKey, ErrBadSignature, ErrDigestMismatch, ErrSerialMismatch, ErrNotYetValid, ErrExpired}
	f.Fuzz(func(t *testing.T, data []byte) {
		if env, err := Parse(data); err == nil {
			if !bytes.Equal(encodeEnvelope(env.StatementBytes, env.Signature), data) {
				t.Fatalf("Parse accepted a non-canonical envelope: %q", data)
			}
			if !bytes.Equal(env.Statement.marshal(), env.StatementBytes) {
				t.Fatalf("Parse accepted a non-canonical statement: %q", env.StatementBytes)
			}
		}
		st, err := Verify(data, policy, 9, ring, now)
		if err == nil {
			if got, _ := Parse(data); !bytes.Equal(got.StatementBytes, genuine.StatementBytes) || st.Serial != 9 {
				t.Fatalf("Verify accepted a statement nobody signed: %q", data)
			}
			return
		}
		for _, k := range kinds {
			if errors.Is(err, k) {
				return
			}
		}
		t.Fatalf("error wraps no known failure: %v", err)
	})
}
