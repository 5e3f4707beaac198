package sign

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// StatementType is the type of a version 1 policy signature statement.
const StatementType = "aegisbpf.policy.signature/v1"

// MaxStatementLen bounds the statement; a real one is about 250 bytes.
const MaxStatementLen = 1024

// Statement is what a key holder vouches for.
type Statement struct {
	Type         string `json:"type"`
	PolicySHA256 string `json:"policy_sha256"`
	Serial       uint64 `json:"serial"`
	NotBefore    string `json:"not_before"`
	NotAfter     string `json:"not_after"`
	KeyID        string `json:"key_id"`
}

// NotBeforeTime returns the start of the validity window.
func (s *Statement) NotBeforeTime() time.Time { t, _ := parseTime(s.NotBefore); return t }

// NotAfterTime returns the end of the validity window.
func (s *Statement) NotAfterTime() time.Time { t, _ := parseTime(s.NotAfter); return t }

// formatTime writes t as RFC 3339 in UTC, to the second.
func formatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	if formatTime(t) != s {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 UTC to the second, e.g. %q", s, formatTime(t))
	}
	return t, nil
}

// marshal returns the canonical bytes of s.
func (s *Statement) marshal() []byte {
	// encoding/json writes struct fields in declaration order, and the
	// values here (hex, RFC 3339, a fixed type) need no escaping.
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("encoding statement: %v", err)) // cannot happen: only strings and a uint64
	}
	return b
}

// parseStatement parses canonical statement bytes strictly.
func parseStatement(b []byte) (*Statement, error) {
	if len(b) > MaxStatementLen {
		return nil, fmt.Errorf("statement is %d bytes, the limit is %d", len(b), MaxStatementLen)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Statement
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding statement: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding statement: trailing data")
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(s.marshal(), b) {
		return nil, fmt.Errorf("statement is not in canonical form")
	}
	return &s, nil
}

// check validates the statement's fields.
func (s *Statement) check() error {
	if s.Type != StatementType {
		return fmt.Errorf("statement type is %q, want %q", s.Type, StatementType)
	}
	if !isLowerHex(s.PolicySHA256, 64) {
		return fmt.Errorf("statement policy_sha256 %q is not 64 lowercase hex digits", s.PolicySHA256)
	}
	if !isLowerHex(s.KeyID, keys.IDLen) {
		return fmt.Errorf("statement key_id %q is not %d lowercase hex digits", s.KeyID, keys.IDLen)
	}
	nb, err := parseTime(s.NotBefore)
	if err != nil {
		return fmt.Errorf("statement not_before: %w", err)
	}
	na, err := parseTime(s.NotAfter)
	if err != nil {
		return fmt.Errorf("statement not_after: %w", err)
	}
	if !na.After(nb) {
		return fmt.Errorf("statement not_after %s is not after not_before %s", s.NotAfter, s.NotBefore)
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == string(bytes.ToLower([]byte(s)))
}
