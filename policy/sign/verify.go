package sign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Errors that Verify's errors wrap, for errors.Is.
var (
	ErrMalformed      = errors.New("malformed signature file")
	ErrUnknownKey     = errors.New("signed by an untrusted key")
	ErrBadSignature   = errors.New("bad signature")
	ErrDigestMismatch = errors.New("policy sha256 mismatch")
	ErrSerialMismatch = errors.New("policy serial mismatch")
	ErrNotYetValid    = errors.New("signature not yet valid")
	ErrExpired        = errors.New("signature expired")
)

// verifyError carries a full message and the sentinel it stands for.
type verifyError struct {
	kind error
	msg  string
}

func (e *verifyError) Error() string { return e.msg }
func (e *verifyError) Unwrap() error { return e.kind }

func fail(kind error, format string, args ...any) error {
	return &verifyError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return fail(ErrMalformed, "malformed signature file: "+format, args...)
}

// Verify checks that envelope is a valid signature, by a key in ring, of
// exactly the bytes policy, for a policy with the given serial, at time now.
// It returns the verified statement.
func Verify(envelope, policy []byte, serial uint64, ring keys.Ring, now time.Time) (*Statement, error) {
	s, err := VerifyBytes(envelope, policy, ring, now)
	if err != nil {
		return nil, err
	}
	if err := s.CheckSerial(serial); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckSerial checks that the statement covers a policy with this serial.
func (s *Statement) CheckSerial(serial uint64) error {
	if s.Serial != serial {
		return fail(ErrSerialMismatch, "policy serial mismatch: policy has %d, signature covers %d", serial, s.Serial)
	}
	return nil
}

// VerifyBytes is Verify without the serial check, for a caller that has
// not parsed the policy yet: it should verify before it parses, and then
// call CheckSerial.
func VerifyBytes(envelope, policy []byte, ring keys.Ring, now time.Time) (*Statement, error) {
	env, err := Parse(envelope)
	if err != nil {
		return nil, err
	}
	s := env.Statement
	pub, ok := ring.Lookup(s.KeyID)
	if !ok {
		trusted := strings.Join(ring.IDs(), ", ")
		if trusted == "" {
			trusted = "none"
		}
		return nil, fail(ErrUnknownKey, "signed by unknown key %s, trusted: %s", s.KeyID, trusted)
	}
	if !ed25519.Verify(pub, env.StatementBytes, env.Signature) {
		return nil, fail(ErrBadSignature, "signature does not match key %s", s.KeyID)
	}
	sum := sha256.Sum256(policy)
	if got := hex.EncodeToString(sum[:]); got != s.PolicySHA256 {
		return nil, fail(ErrDigestMismatch, "policy sha256 mismatch: file has %s, signature covers %s", got, s.PolicySHA256)
	}
	if now.Before(s.NotBeforeTime()) {
		return nil, fail(ErrNotYetValid, "signature not valid before %s (now %s)", s.NotBefore, formatTime(now))
	}
	if now.After(s.NotAfterTime()) {
		return nil, fail(ErrExpired, "signature expired at %s (now %s)", s.NotAfter, formatTime(now))
	}
	return s, nil
}
