// Package buildinfo holds the version stamped into the binary at link time
// and the digest of the embedded BPF objects.
package buildinfo
