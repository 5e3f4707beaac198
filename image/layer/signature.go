package layer

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// SignatureAlgorithm is the only signature algorithm written and accepted.
const SignatureAlgorithm = "ed25519"

// maxSignatureSize bounds what parseSignature reads.
const maxSignatureSize = 4096

// Signature is the content of a manifest's sidecar: an Ed25519 signature
// over the exact bytes of the manifest file, and the ID of the key that
// made it (keys.ID of the public key).
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	// Signature is base64 (standard alphabet, padded) of the 64-byte signature.
	Signature string `json:"signature"`
}

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Sign signs manifest with priv and returns the sidecar's bytes.
func Sign(priv ed25519.PrivateKey, manifest []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing manifest: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	pub, ok := priv.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("signing manifest: private key has no Ed25519 public key")
	}
	s := Signature{
		Algorithm: SignatureAlgorithm,
		KeyID:     keys.ID(pub),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, manifest)),
	}
	return encodeSignature(&s)
}

func encodeSignature(s *Signature) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encoding signature: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseSignature decodes a sidecar strictly (unknown fields, trailing data
// and non-canonical encodings are errors) and returns the signature with
// its raw bytes.
func ParseSignature(data []byte) (*Signature, []byte, error) {
	if len(data) > maxSignatureSize {
		return nil, nil, fmt.Errorf("signature file is %d bytes, more than the %d allowed", len(data), maxSignatureSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Signature
	if err := dec.Decode(&s); err != nil {
		return nil, nil, fmt.Errorf("decoding signature file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("decoding signature file: data after the JSON object")
	}
	if s.Algorithm != SignatureAlgorithm {
		return nil, nil, fmt.Errorf("signature algorithm %q, want %q", s.Algorithm, SignatureAlgorithm)
	}
	if !keyIDRE.MatchString(s.KeyID) {
		return nil, nil, fmt.Errorf("signature key_id %q is not %d lower-case hex digits", s.KeyID, keys.IDLen)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s.Signature)
	if err != nil {
		return nil, nil, fmt.Errorf("signature is not standard base64: %w", err)
	}
	if len(raw) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("signature has %d bytes, want %d", len(raw), ed25519.SignatureSize)
	}
	canon, err := encodeSignature(&s)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, nil, errors.New("signature file is not in canonical form")
	}
	return &s, raw, nil
}

// checkSignature verifies sidecar over manifest with a key of ring and
// returns the key ID.
func checkSignature(ring keys.Ring, manifest, sidecar []byte) (string, error) {
	s, raw, err := ParseSignature(sidecar)
	if err != nil {
		return "", err
	}
	pub, ok := ring.Lookup(s.KeyID)
	if !ok {
		return "", fmt.Errorf("signed by key %s, which is not trusted (trusted keys: %v)", s.KeyID, ring.IDs())
	}
	if !ed25519.Verify(pub, manifest, raw) {
		return "", fmt.Errorf("signature by key %s does not match the manifest bytes", s.KeyID)
	}
	return s.KeyID, nil
}

// VerifySignature verifies sidecar (the format Sign writes) over data with
// a key of ring and returns the key ID. Channels use the same sidecar.
func VerifySignature(ring keys.Ring, data, sidecar []byte) (string, error) {
	return checkSignature(ring, data, sidecar)
}
