package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime/debug"
	"time"

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

// CommitTime is the time of the commit the binary was built from, as the
// Go toolchain records it (vcs.time); false when it did not (go run, tests,
// a build outside the repository).
func CommitTime() (time.Time, bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}, false
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			t, err := time.Parse(time.RFC3339, s.Value)
			return t, err == nil
		}
	}
	return time.Time{}, false
}
