// Package sign makes and checks the detached signature of a policy file.
//
// A signature signs a statement, never the policy directly. The statement
// is canonical JSON with a fixed field order:
//
//	{"type":"aegisbpf.policy.signature/v1","policy_sha256":"<64 hex>",
//	 "serial":N,"not_before":"<RFC 3339 UTC>","not_after":"<RFC 3339 UTC>",
//	 "key_id":"<16 hex>"}
//
// (on one line, no spaces). The Ed25519 signature covers the exact
// statement bytes. The detached .sig file (the envelope) is itself
// canonical JSON, {"statement":"<base64>","signature":"<base64>"} and a
// newline, in standard padded base64. Both levels must be byte-for-byte
// canonical: any other spelling of the same content is refused, so a
// signature file has exactly one valid form and flipping any byte of it
// fails verification.
//
// Verify checks, in order: the envelope and statement parse; the key id is
// in the trusted ring; the signature holds over the statement bytes; the
// policy's sha256 matches; the current time is in the validity window; the
// policy's serial matches. Each failure says what failed and wraps one of
// the Err values. VerifyBytes does all but the serial check, so a caller
// can authenticate the policy bytes before it parses them.
package sign
