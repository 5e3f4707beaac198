package layertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// DefaultSeed is the seed of a Config without one.
const DefaultSeed = "aegisbpf"

// Config chooses the inputs. Zero fields take the defaults shown.
type Config struct {
	AgentSize int    // bytes of the fake agent; 0: 256 KiB
	Seed      string // varies the agent bytes and the key; "": DefaultSeed
	Version   string // "": "1.0.0"
	Serial    uint64 // 0: 1
	Epoch     int64  // SOURCE_DATE_EPOCH; 0: 1700000000
}

func (c *Config) defaults() {
	if c.AgentSize == 0 {
		c.AgentSize = 256 << 10
	}
	if c.Seed == "" {
		c.Seed = DefaultSeed
	}
	if c.Version == "" {
		c.Version = "1.0.0"
	}
	if c.Serial == 0 {
		c.Serial = 1
	}
	if c.Epoch == 0 {
		c.Epoch = 1700000000
	}
}

// Inputs are written build inputs.
type Inputs struct {
	// Options are ready for layer.Build but for OutputDir.
	Options   layer.BuildOptions
	PublicKey ed25519.PublicKey
	// KeysDir holds the public key as <key id>.pub, mode 0644: a trust ring
	// for keys.LoadRing.
	KeysDir string
	// KeyPath is the private key file (mode 0600), for the CLI's --key.
	KeyPath string
}

// Policy is the test policy's content.
const Policy = "# aegisbpf layer test policy\nversion = 1\nmode = \"audit\"\n"

// Units are the unit files WriteInputs puts in the units directory; the
// last two must stay out of a layer.
var Units = map[string]string{
	"aegisbpf.service":        "[Unit]\nDescription=AegisBPF test unit\n\n[Service]\nExecStart=/usr/bin/aegisbpf run\n",
	"aegisbpf-metrics.socket": "[Socket]\nListenStream=/run/aegisbpf/metrics.sock\n",
	"other.service":           "[Service]\nExecStart=/bin/true\n",
	"aegisbpf.conf":           "not a unit\n",
}

// WriteInputs writes a complete set of inputs under dir.
func WriteInputs(dir string, c Config) (*Inputs, error) {
	c.defaults()
	units := filepath.Join(dir, "units")
	keysDir := filepath.Join(dir, "keys")
	for _, d := range []string{units, keysDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	agent := filepath.Join(dir, "aegisbpf")
	if err := os.WriteFile(agent, FakeAgent(c.AgentSize, c.Seed), 0o755); err != nil {
		return nil, err
	}
	policy := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(policy, []byte(Policy), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(policy+".sig", PolicySignature([]byte(Policy)), 0o644); err != nil {
		return nil, err
	}
	for name, text := range Units {
		if err := os.WriteFile(filepath.Join(units, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	pub, priv := Key(c.Seed)
	id := keys.ID(pub)
	pubPEM, err := keys.MarshalPublic(pub)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(keysDir, id+".pub"), pubPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(keysDir, id+".pub"), 0o644); err != nil {
		return nil, err
	}
	keyBase := filepath.Join(dir, "signing")
	os.Remove(keyBase + ".key")
	os.Remove(keyBase + ".pub")
	if err := keys.WriteKeyPair(keyBase, pub, priv); err != nil {
		return nil, err
	}
	return &Inputs{
		Options: layer.BuildOptions{
			Agent:           agent,
			Policy:          policy,
			Units:           units,
			Version:         c.Version,
			Serial:          c.Serial,
			SourceDateEpoch: c.Epoch,
			Key:             priv,
			ValidatePolicy:  FakeValidator,
		},
		PublicKey: pub,
		KeysDir:   keysDir,
		KeyPath:   keyBase + ".key",
	}, nil
}

// Build writes inputs under dir/inputs and builds the layer into
// dir/layer, with the trusted public key in dir/layer/keys: the directory
// the VM test reads from AEGISBPF_TEST_LAYER_DIR.
func Build(ctx context.Context, dir string, c Config) (*layer.BuildResult, *Inputs, error) {
	in, err := WriteInputs(filepath.Join(dir, "inputs"), c)
	if err != nil {
		return nil, nil, fmt.Errorf("writing layer test inputs: %w", err)
	}
	in.Options.OutputDir = filepath.Join(dir, "layer")
	res, err := layer.Build(ctx, in.Options)
	if err != nil {
		return nil, nil, err
	}
	keysOut := filepath.Join(in.Options.OutputDir, "keys")
	if err := os.MkdirAll(keysOut, 0o755); err != nil {
		return nil, nil, err
	}
	id := keys.ID(in.PublicKey)
	pem, err := os.ReadFile(filepath.Join(in.KeysDir, id+".pub"))
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(keysOut, id+".pub"), pem, 0o644); err != nil {
		return nil, nil, err
	}
	return res, in, nil
}

// Key derives a key pair from seed.
func Key(seed string) (ed25519.PublicKey, ed25519.PrivateKey) {
	s := sha256.Sum256([]byte("aegisbpf layertest key\x00" + seed))
	priv := ed25519.NewKeyFromSeed(s[:])
	return priv.Public().(ed25519.PublicKey), priv
}

// FakeAgent returns size bytes that parse as a static x86-64 ELF
// executable (a header without program headers) followed by bytes drawn
// from seed.
func FakeAgent(size int, seed string) []byte {
	const ehsize = 64
	size = max(size, ehsize)
	b := make([]byte, size)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 /* version */})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)  // EV_CURRENT
	le.PutUint64(b[24:], 0x401000)
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], 56) // program header entry size
	le.PutUint16(b[58:], 64) // section header entry size
	rng := rand.NewChaCha8(sha256.Sum256([]byte("aegisbpf layertest agent\x00" + seed)))
	rng.Read(b[ehsize:])
	return b
}

// PolicySignature is the stand-in signature FakeValidator accepts.
func PolicySignature(policy []byte) []byte {
	sum := sha256.Sum256(policy)
	return []byte("layertest-signature " + hex.EncodeToString(sum[:]) + "\n")
}

// FakeValidator accepts a policy whose signature is PolicySignature(policy)
// and that does not contain "INVALID", and returns "sha256:" and the hex
// SHA-256 of the policy as its digest.
func FakeValidator(name string, policy, sig []byte) (string, error) {
	if bytes.Contains(policy, []byte("INVALID")) {
		return "", fmt.Errorf("%s: line 1: INVALID is not a rule", name)
	}
	if !bytes.Equal(sig, PolicySignature(policy)) {
		return "", errors.New("policy signature does not match the policy")
	}
	sum := sha256.Sum256(policy)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
