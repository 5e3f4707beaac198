package layer

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/aegisbpf/aegisbpf/image/tools"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Input size limits.
const (
	maxAgentSize     = 512 << 20
	maxPolicySize    = 64 << 20
	maxPolicySigSize = 64 << 10
	maxUnitSize      = 1 << 20
)

// PolicyValidator checks a policy and its detached signature as the agent
// will, and returns the policy's digest for the manifest. name is the
// policy's file name, for messages. Build refuses the layer when it
// returns an error.
type PolicyValidator func(name string, policy, signature []byte) (digest string, err error)

// BuildOptions are the inputs of a layer.
type BuildOptions struct {
	Agent           string // the static agent binary
	Policy          string // policy.toml
	PolicySignature string // its detached signature; "" means Policy + ".sig"
	Units           string // directory with aegisbpf*.service, *.socket, *.timer
	Version         string // see CheckVersion
	Serial          uint64 // monotonic, from 1
	// SourceDateEpoch is every timestamp in the layer and its build time.
	// It is required: a layer's bytes must not depend on the clock.
	SourceDateEpoch int64
	Key             ed25519.PrivateKey // signs the manifest
	OutputDir       string             // created if missing; outputs are replaced
	ValidatePolicy  PolicyValidator    // required
	// Erofs and Verity run the external programs; nil finds them on PATH.
	Erofs  *tools.Erofs
	Verity *tools.Verity
}

// BuildResult names what Build wrote.
type BuildResult struct {
	Manifest      *Manifest
	KeyID         string
	ManifestPath  string
	SignaturePath string
	ErofsPath     string
	VerityPath    string
}

func (o *BuildOptions) check() error {
	var errs []error
	for _, r := range []struct{ name, v string }{
		{"agent", o.Agent}, {"policy", o.Policy}, {"units directory", o.Units}, {"output directory", o.OutputDir},
	} {
		if r.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", r.name))
		}
	}
	if err := CheckVersion(o.Version); err != nil {
		errs = append(errs, err)
	}
	if o.Serial == 0 {
		errs = append(errs, errors.New("serial is required and starts at 1"))
	}
	if o.SourceDateEpoch <= 0 {
		errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH is required and positive, got %d (e.g. git log -1 --format=%%ct)", o.SourceDateEpoch))
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("an Ed25519 signing key is required"))
	}
	if o.ValidatePolicy == nil {
		errs = append(errs, errors.New("a policy validator is required"))
	}
	return errors.Join(errs...)
}

// Build makes the layer of opts in opts.OutputDir: the erofs image, its
// hash tree, the manifest and its signature, named by ErofsName,
// VerityName, ManifestName and SignatureName. The same options (with the
// same mkfs.erofs and veritysetup versions) give byte-identical files,
// whatever the umask, clock, input file times and modes. Outputs are
// written beside the final names and renamed into place, then checked with
// VerifyHashes against the signing key.
func Build(ctx context.Context, opts BuildOptions) (*BuildResult, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("building layer: %w", err)
	}
	if opts.PolicySignature == "" {
		opts.PolicySignature = opts.Policy + ".sig"
	}
	var err error
	if opts.Erofs == nil {
		if opts.Erofs, err = tools.FindErofs(ctx); err != nil {
			return nil, fmt.Errorf("building layer: %w", err)
		}
	}
	if opts.Verity == nil {
		if opts.Verity, err = tools.FindVerity(ctx); err != nil {
			return nil, fmt.Errorf("building layer: %w", err)
		}
	}
	files, arch, digest, err := gatherInputs(&opts)
	if err != nil {
		return nil, fmt.Errorf("building layer: %w", err)
	}
	if err := os.MkdirAll(opts.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("building layer: creating output directory: %w", err)
	}
	work, err := os.MkdirTemp(opts.OutputDir, ".aegisbpf-build-")
	if err != nil {
		return nil, fmt.Errorf("building layer: %w", err)
	}
	defer os.RemoveAll(work)
	res, err := build(ctx, &opts, work, files, arch, digest)
	if err != nil {
		return nil, fmt.Errorf("building layer %s: %w", opts.Version, err)
	}
	return res, nil
}

// gatherInputs reads and checks every input and returns the files of the
// layer, the agent's architecture and the policy digest.
func gatherInputs(o *BuildOptions) ([]layerFile, string, string, error) {
	agent, err := readRegular(o.Agent, maxAgentSize)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading agent: %w", err)
	}
	arch, err := agentArchitecture(agent)
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: %w", o.Agent, err)
	}
	policy, err := readRegular(o.Policy, maxPolicySize)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading policy: %w", err)
	}
	sig, err := readRegular(o.PolicySignature, maxPolicySigSize)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading policy signature: %w", err)
	}
	if len(sig) == 0 {
		return nil, "", "", fmt.Errorf("policy signature %s is empty", o.PolicySignature)
	}
	digest, err := o.ValidatePolicy(filepath.Base(o.Policy), policy, sig)
	if err != nil {
		return nil, "", "", fmt.Errorf("policy %s refused: %w", o.Policy, err)
	}
	if !digestRE.MatchString(digest) {
		return nil, "", "", fmt.Errorf("policy validator returned digest %q: want 1 to 256 printable ASCII characters", digest)
	}
	units, err := unitFiles(o.Units)
	if err != nil {
		return nil, "", "", err
	}
	files := append([]layerFile{
		{path: AgentFile, mode: 0o755, data: agent},
		{path: PolicyFile, mode: 0o644, data: policy},
		{path: PolicySignatureFile, mode: 0o644, data: sig},
		{path: ExtensionReleaseFile, mode: 0o644, data: extensionRelease(o.Version, arch)},
	}, units...)
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, arch, digest, nil
}

func build(ctx context.Context, o *BuildOptions, work string, files []layerFile, arch, digest string) (*BuildResult, error) {
	entries := make([]File, len(files))
	for i, f := range files {
		entries[i] = f.manifestEntry()
	}
	sortFiles(entries)

	tree := filepath.Join(work, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return nil, err
	}
	if err := writeTree(tree, files, o.SourceDateEpoch); err != nil {
		return nil, err
	}
	erofsUUID := erofsUUIDOf(o.Version, o.SourceDateEpoch, entries)
	erofsTmp := filepath.Join(work, ErofsName(o.Version))
	if err := o.Erofs.Build(ctx, tools.ErofsImage{Source: tree, Output: erofsTmp, Epoch: o.SourceDateEpoch, UUID: erofsUUID}); err != nil {
		return nil, err
	}
	if err := padToBlock(erofsTmp); err != nil {
		return nil, err
	}
	erofsSize, erofsSum, err := HashFile(erofsTmp)
	if err != nil {
		return nil, err
	}
	rawSum, _ := hex.DecodeString(erofsSum)
	salt := derive("aegisbpf verity salt v1", rawSum)
	vparams := tools.VerityParams{
		HashAlgorithm: VerityHashAlgorithm,
		DataBlockSize: VerityBlockSize,
		HashBlockSize: VerityBlockSize,
		Salt:          hex.EncodeToString(salt[:]),
		UUID:          uuidOf(derive("aegisbpf verity uuid v1", rawSum)),
	}
	verityTmp := filepath.Join(work, VerityName(o.Version))
	rootHash, err := o.Verity.Format(ctx, erofsTmp, verityTmp, vparams)
	if err != nil {
		return nil, err
	}
	veritySize, veritySum, err := HashFile(verityTmp)
	if err != nil {
		return nil, err
	}

	pub := o.Key.Public().(ed25519.PublicKey)
	m := &Manifest{
		FormatVersion:   FormatVersion,
		Name:            ExtensionName,
		Version:         o.Version,
		Serial:          o.Serial,
		SourceDateEpoch: o.SourceDateEpoch,
		BuildTime:       buildTime(o.SourceDateEpoch),
		Architecture:    arch,
		Artifacts: []Artifact{
			{Name: ErofsName(o.Version), Size: erofsSize, SHA256: erofsSum},
			{Name: VerityName(o.Version), Size: veritySize, SHA256: veritySum},
		},
		Verity: Verity{
			RootHash:      rootHash,
			HashAlgorithm: VerityHashAlgorithm,
			DataBlockSize: VerityBlockSize,
			HashBlockSize: VerityBlockSize,
			DataBlocks:    uint64(erofsSize) / VerityBlockSize,
			Salt:          vparams.Salt,
			UUID:          vparams.UUID,
		},
		ErofsUUID:    erofsUUID,
		PolicyDigest: digest,
		Files:        entries,
		Tools:        Tools{MkfsErofs: o.Erofs.Version().String(), Veritysetup: o.Verity.Version().String()},
	}
	m.AgentSHA256 = mustFile(m, AgentFile).SHA256
	m.PolicySHA256 = mustFile(m, PolicyFile).SHA256
	manifest, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("the manifest this build made is invalid: %w", err)
	}
	sig, err := Sign(o.Key, manifest)
	if err != nil {
		return nil, err
	}
	manifestTmp := filepath.Join(work, ManifestName(o.Version))
	sigTmp := filepath.Join(work, SignatureName(o.Version))
	if err := writeExact(manifestTmp, manifest, 0o644); err != nil {
		return nil, err
	}
	if err := writeExact(sigTmp, sig, 0o644); err != nil {
		return nil, err
	}

	res := &BuildResult{
		Manifest:      m,
		KeyID:         keys.ID(pub),
		ManifestPath:  filepath.Join(o.OutputDir, ManifestName(o.Version)),
		SignaturePath: filepath.Join(o.OutputDir, SignatureName(o.Version)),
		ErofsPath:     filepath.Join(o.OutputDir, ErofsName(o.Version)),
		VerityPath:    filepath.Join(o.OutputDir, VerityName(o.Version)),
	}
	// The manifest goes last, so it never names artifacts not yet in place.
	for _, mv := range [][2]string{
		{erofsTmp, res.ErofsPath}, {verityTmp, res.VerityPath}, {sigTmp, res.SignaturePath}, {manifestTmp, res.ManifestPath},
	} {
		if err := os.Chmod(mv[0], 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return nil, fmt.Errorf("moving output into place: %w", err)
		}
	}
	if _, err := VerifyHashes(res.ManifestPath, keys.Ring{res.KeyID: pub}); err != nil {
		return nil, fmt.Errorf("checking the layer just written: %w", err)
	}
	return res, nil
}

func mustFile(m *Manifest, p string) File {
	f, _ := m.File(p)
	return f
}

// padToBlock extends the file with zeros to a multiple of VerityBlockSize,
// so the hash tree covers every byte of it.
func padToBlock(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%s is empty", p)
	}
	if r := fi.Size() % VerityBlockSize; r != 0 {
		if err := os.Truncate(p, fi.Size()+VerityBlockSize-r); err != nil {
			return fmt.Errorf("padding %s to a whole block: %w", p, err)
		}
	}
	return nil
}

// HashFile returns the size and hex SHA-256 of a file.
func HashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", p, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// derive is SHA-256 over a label, a NUL, and the given bytes.
func derive(label string, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// uuidOf formats the first 16 bytes of sum as an RFC 9562 version 8
// (custom) UUID.
func uuidOf(sum [32]byte) string {
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// erofsUUIDOf derives the filesystem UUID from everything the image holds.
func erofsUUIDOf(version string, epoch int64, files []File) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", version, epoch)
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s\x00", f.Path, f.Mode, f.Size, f.SHA256)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return uuidOf(derive("aegisbpf erofs uuid v1", sum[:]))
}
