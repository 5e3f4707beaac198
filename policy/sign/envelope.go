package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// MaxEnvelopeLen bounds a .sig file.
const MaxEnvelopeLen = 4096

// ReadFile reads a .sig file, refusing one larger than MaxEnvelopeLen
// without reading all of it. A missing file's error wraps fs.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading signature: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxEnvelopeLen+1))
	if err != nil {
		return nil, fmt.Errorf("reading signature %s: %w", path, err)
	}
	if len(data) > MaxEnvelopeLen {
		return nil, malformed("%s is larger than %d bytes", path, MaxEnvelopeLen)
	}
	return data, nil
}

// Envelope is a parsed .sig file. Statement is parsed from
// StatementBytes, the exact bytes Signature covers.
type Envelope struct {
	Statement      *Statement
	StatementBytes []byte
	Signature      []byte
}

type envelopeJSON struct {
	Statement string `json:"statement"`
	Signature string `json:"signature"`
}

func encodeEnvelope(stmt, sig []byte) []byte {
	b, err := json.Marshal(envelopeJSON{
		Statement: base64.StdEncoding.EncodeToString(stmt),
		Signature: base64.StdEncoding.EncodeToString(sig),
	})
	if err != nil {
		panic(fmt.Sprintf("encoding envelope: %v", err)) // cannot happen: two strings
	}
	return append(b, '\n')
}

// Sign signs policy (the exact bytes of the policy file) with priv and
// returns the envelope to write to the .sig file. The window is
// [notBefore, notAfter], both truncated to the second.
func Sign(priv ed25519.PrivateKey, policy []byte, serial uint64, notBefore, notAfter time.Time) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("signing policy: not an Ed25519 private key")
	}
	sum := sha256.Sum256(policy)
	s := &Statement{
		Type:         StatementType,
		PolicySHA256: hex.EncodeToString(sum[:]),
		Serial:       serial,
		NotBefore:    formatTime(notBefore),
		NotAfter:     formatTime(notAfter),
		KeyID:        keys.ID(priv.Public().(ed25519.PublicKey)),
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("signing policy: %w", err)
	}
	stmt := s.marshal()
	return encodeEnvelope(stmt, ed25519.Sign(priv, stmt)), nil
}

// Parse decodes a .sig file strictly: canonical JSON, strict base64, a
// canonical statement. It does not check the signature; Verify does.
func Parse(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeLen {
		return nil, malformed("signature file is %d bytes, the limit is %d", len(data), MaxEnvelopeLen)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ej envelopeJSON
	if err := dec.Decode(&ej); err != nil {
		return nil, malformed("decoding signature file: %v", err)
	}
	stmt, err := base64.StdEncoding.Strict().DecodeString(ej.Statement)
	if err != nil {
		return nil, malformed("decoding statement base64: %v", err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(ej.Signature)
	if err != nil {
		return nil, malformed("decoding signature base64: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, malformed("signature is %d bytes, an Ed25519 signature is %d", len(sig), ed25519.SignatureSize)
	}
	if !bytes.Equal(encodeEnvelope(stmt, sig), data) {
		return nil, malformed("signature file is not in canonical form (it must be exactly what aegisbpf policy sign wrote)")
	}
	s, err := parseStatement(stmt)
	if err != nil {
		return nil, malformed("%v", err)
	}
	return &Envelope{Statement: s, StatementBytes: stmt, Signature: sig}, nil
}
