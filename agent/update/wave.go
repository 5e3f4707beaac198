package update

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// DefaultMachineIDFile is systemd's machine id.
const DefaultMachineIDFile = "/etc/machine-id"

var machineIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Position is a host's place in a release's rollout, in [0, 1): the host
// installs the release once a wave with a larger fraction has opened. It
// is a hash of the machine id and the release's version, so it never
// changes for one release, and the canaries of one release are not those
// of the next.
func Position(machineID, version string) float64 {
	h := sha256.New()
	h.Write([]byte("aegisbpf wave\x00"))
	h.Write([]byte(machineID))
	h.Write([]byte{0})
	h.Write([]byte(version))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	// The top 53 bits: every value exact in a float64, uniform in [0, 1).
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// ReadMachineID reads and checks a machine id file (32 lower-case hex
// digits and a newline, machine-id(5)).
func ReadMachineID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the machine id: %w", err)
	}
	id := strings.TrimSuffix(string(data), "\n")
	if !machineIDRE.MatchString(id) {
		return "", fmt.Errorf("%s: %q is not a machine id (32 lower-case hex digits)", path, id)
	}
	return id, nil
}
