// Package buildinfo holds the version stamped into the binary at link time,
// the commit time the Go toolchain records, and the digest of the embedded
// BPF objects.
package buildinfo
