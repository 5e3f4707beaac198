// Package keys reads, writes and identifies the Ed25519 keys that sign
// AegisBPF policies and image manifests.
//
// Private keys are PKCS#8 PEM files written with mode 0600 and refused when
// group or others can read them. Public keys are PKIX PEM files. A key is
// named by its ID: the first 16 hex digits of the SHA-256 of the raw 32-byte
// public key. A trust store is a directory of *.pub files, typically
// /usr/lib/aegisbpf/keys in the read-only base OS.
package keys
