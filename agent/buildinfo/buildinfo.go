package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// Set with -ldflags "-X github.com/aegisbpf/aegisbpf/agent/buildinfo.Version=...".
var (
	Version = "dev"
	Commit  = "unknown"
)

// BPFDigest is the sha256 of the embedded BPF object files, in a fixed order.
func BPFDigest() string {
	h := sha256.New()
	for _, obj := range bpf.Objects() {
		h.Write([]byte(obj.Name))
		h.Write([]byte{0})
		h.Write(obj.Bytes)
	}
	return hex.EncodeToString(h.Sum(nil))
}
