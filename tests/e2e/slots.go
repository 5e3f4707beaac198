package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// Where the base OS of a slotted appliance keeps the slot manager: a copy
// of the agent outside /usr/bin, which the layer provides.
const (
	BaseAgent     = "/usr/libexec/aegisbpf/aegisbpf"
	baseUnitsDir  = "/etc/systemd/system"
	layerEpoch    = "1764288000" // SOURCE_DATE_EPOCH of test layers
	slotsVarDir   = "/var/lib/aegisbpf"
	appliancePubs = "/usr/lib/aegisbpf/keys"
)

// Release is one layer version built for a slotted appliance.
type Release struct {
	Version string
	Serial  uint64
	// Policy is the policy's TOML; it is signed with Key.
	Policy string
	// ServiceExtra is appended to the layer's aegisbpf.service, e.g. a
	// fault: "ExecStartPost=...".
	ServiceExtra string
	// Key signs the layer and its policy; nil means the Kit's key.
	Key ed25519.PrivateKey
}

// Kit builds what a slotted appliance needs: the agent binary (built from
// this checkout), a signing key (a test key, generated per Kit), layers
// built with 'aegisbpf image build', and the base OS files.
type Kit struct {
	Dir   string // host work directory
	Agent string // the static agent binary
	Pub   ed25519.PublicKey
	Key   ed25519.PrivateKey
	repo  string
}

// NewKit builds the agent into dir and makes a signing key.
func NewKit(ctx context.Context, dir string) (*Kit, error) {
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	k := &Kit{Dir: dir, Agent: filepath.Join(dir, "aegisbpf"), repo: repo}
	ldflags := "-s -w"
	if v, c := gitOut(repo, "describe", "--tags", "--always", "--dirty"), gitOut(repo, "rev-parse", "--verify", "-q", "HEAD"); v != "" && c != "" {
		ldflags += " -X github.com/aegisbpf/aegisbpf/agent/buildinfo.Version=" + v + " -X github.com/aegisbpf/aegisbpf/agent/buildinfo.Commit=" + c
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags="+ldflags, "-o", k.Agent, "./agent/cmd/aegisbpf")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the agent: %w\n%s", err, out)
	}
	k.Pub, k.Key, err = keys.Generate()
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Layer builds rel into Dir/layers/VERSION with 'aegisbpf image build'
// and returns that directory.
func (k *Kit) Layer(ctx context.Context, rel Release) (string, error) {
	key := rel.Key
	if key == nil {
		key = k.Key
	}
	in := filepath.Join(k.Dir, "inputs", rel.Version)
	units := filepath.Join(in, "units")
	out := filepath.Join(k.Dir, "layers", rel.Version)
	if err := os.MkdirAll(units, 0o755); err != nil {
		return "", err
	}
	svc, err := os.ReadFile(filepath.Join(k.repo, "systemd", "aegisbpf.service"))
	if err != nil {
		return "", err
	}
	if rel.ServiceExtra != "" {
		svc = bytes.Replace(svc, []byte("\n[Install]"), []byte("\n# e2e fault injection\n"+rel.ServiceExtra+"\n\n[Install]"), 1)
	}
	sock, err := os.ReadFile(filepath.Join(k.repo, "systemd", "aegisbpf-metrics.socket"))
	if err != nil {
		return "", err
	}
	// Valid for a year, like 'aegisbpf policy sign' by default (doctor
	// warns within 30 days of the end).
	sig, err := sign.Sign(key, []byte(rel.Policy), rel.Serial, time.Now().Add(-24*time.Hour), time.Now().Add(365*24*time.Hour))
	if err != nil {
		return "", err
	}
	privPEM, err := keys.MarshalPrivate(key)
	if err != nil {
		return "", err
	}
	files := map[string][]byte{
		filepath.Join(units, "aegisbpf.service"):        svc,
		filepath.Join(units, "aegisbpf-metrics.socket"): sock,
		filepath.Join(in, "policy.toml"):                []byte(rel.Policy),
		filepath.Join(in, "policy.toml.sig"):            sig,
		filepath.Join(in, "signing.key"):                privPEM,
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return "", err
		}
	}
	cmd := exec.CommandContext(ctx, k.Agent, "image", "build", "--agent", k.Agent,
		"--policy", filepath.Join(in, "policy.toml"), "--units", units,
		"--version", rel.Version, "--serial", strconv.FormatUint(rel.Serial, 10),
		"--key", filepath.Join(in, "signing.key"), "--out", out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+layerEpoch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building layer %s: %w\n%s", rel.Version, err, b)
	}
	return out, nil
}

// PubPEM is the Kit's public key as the base OS holds it.
func (k *Kit) PubPEM() []byte {
	b, err := keys.MarshalPublic(k.Pub)
	if err != nil {
		panic(err)
	}
	return b
}

// SlottedConfig is the appliance of a slotted host.
type SlottedConfig struct {
	// First is the layer preinstalled in slot a and marked good.
	First string
	// Probation is the probation time (the unit's default: 30s).
	Probation string
	// RootFiles are added to the base root (protected files, ...).
	RootFiles []appliance.File
	// Updates are layer directories put on the /var disk, each at
	// UpdatesDir/NAME: what an operator would download before 'slot
	// install' (copying them over the control channel is slow).
	Updates map[string]string
}

// UpdatesDir is where SlottedConfig.Updates land in the guest.
const UpdatesDir = "/var/tmp/aegis-updates"

// ApplianceConfig returns the appliance configuration of a slotted host:
// the base OS's slot manager, units and trusted key, and /var with the
// first layer preinstalled in slot a by 'slot install --as-good'.
func (k *Kit) ApplianceConfig(ctx context.Context, c SlottedConfig) (appliance.Config, error) {
	varDir := filepath.Join(k.Dir, "var")
	keysDir := filepath.Join(k.Dir, "keys")
	os.RemoveAll(varDir)
	if err := os.MkdirAll(keysDir, 0o755); err != nil {
		return appliance.Config{}, err
	}
	if err := os.WriteFile(filepath.Join(keysDir, "e2e.pub"), k.PubPEM(), 0o644); err != nil {
		return appliance.Config{}, err
	}
	m := &slot.Manager{Dir: varDir, KeysDir: keysDir, Sys: slot.Host{}}
	if err := m.Seed(ctx, c.First); err != nil {
		return appliance.Config{}, fmt.Errorf("preinstalling %s: %w", c.First, err)
	}
	varFiles, err := appliance.FilesFromDir(varDir, slotsVarDir)
	if err != nil {
		return appliance.Config{}, err
	}
	for name, dir := range c.Updates {
		files, err := appliance.FilesFromDir(dir, UpdatesDir+"/"+name)
		if err != nil {
			return appliance.Config{}, err
		}
		varFiles = append(varFiles, files...)
	}
	root := []appliance.File{
		{Path: BaseAgent, Mode: 0o755, Source: k.Agent},
		{Path: appliancePubs + "/e2e.pub", Mode: 0o644, Data: k.PubPEM()},
	}
	base := filepath.Join(k.repo, "systemd", "base")
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		root = append(root, appliance.File{Path: baseUnitsDir + "/" + filepath.ToSlash(rel), Mode: 0o644, Source: p})
		return nil
	})
	if err != nil {
		return appliance.Config{}, err
	}
	root = append(root, appliance.File{
		Path: baseUnitsDir + "/sysinit.target.wants/aegisbpf-slot-activate.service", Mode: fs.ModeSymlink | 0o777,
		Target: baseUnitsDir + "/aegisbpf-slot-activate.service",
	})
	if c.Probation != "" {
		root = append(root, appliance.File{
			Path: baseUnitsDir + "/aegisbpf-slot-probation.service.d/50-e2e.conf", Mode: 0o644,
			Data: []byte("[Service]\nEnvironment=AEGISBPF_PROBATION=" + c.Probation + "\n"),
		})
	}
	root = append(root, c.RootFiles...)
	return appliance.Config{RootFiles: root, VarFiles: varFiles}, nil
}

// DenyReads is a signed-policy text denying reads of paths, one rule per
// id → path.
func DenyReads(serial uint64, rules ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\nmode = \"enforce\"\nserial = %d\n", serial)
	for _, r := range rules {
		fmt.Fprintf(&b, "\n[[file]]\nid = %q\npaths = [%q]\naccess = \"read\"\n", r[0], r[1])
	}
	return b.String()
}

// gitOut runs git in repo and returns its trimmed output, "" on failure
// (a tarball without .git): the agent is then stamped "dev".
func gitOut(repo string, args ...string) string {
	out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
