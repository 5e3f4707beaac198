package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/policy"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// defaultTrustedKeys is the trust anchor in the base OS (DESIGN.md §5).
const defaultTrustedKeys = "/usr/lib/aegisbpf/keys"

// imageCommand groups the image layer verbs (docs/IMAGE.md).
func imageCommand() *Command {
	return newImageCommand(imagePolicyValidator)
}

// imagePolicyValidator is the check image build runs on the policy and its
// signature before they go into a layer: the policy must parse and validate;
// a policy that enforces anything must carry a signature (hosts refuse an
// unsigned enforcing policy, so such a layer could never activate); a
// signature present must be well-formed and cover exactly these policy
// bytes and this serial. Whether its key is trusted is the host's check,
// against the base OS's keys, not the build host's.
func imagePolicyValidator(name string, src, signature []byte) (string, error) {
	p, err := policy.Parse(name, src)
	if err != nil {
		return "", err
	}
	c := policy.Compile(p)
	if len(signature) == 0 {
		if c.Enforces() {
			return "", fmt.Errorf("%s enforces rules but has no signature: sign it with 'aegisbpf policy sign' and pass --policy-sig", name)
		}
		return c.Digest, nil
	}
	env, err := sign.Parse(signature)
	if err != nil {
		return "", fmt.Errorf("signature of %s: %w", name, err)
	}
	sum := sha256.Sum256(src)
	if got := hex.EncodeToString(sum[:]); env.Statement.PolicySHA256 != got {
		return "", fmt.Errorf("signature of %s covers policy sha256 %s, the file has %s", name, env.Statement.PolicySHA256, got)
	}
	if env.Statement.Serial != c.Serial {
		return "", fmt.Errorf("signature of %s covers serial %d, the policy says %d", name, env.Statement.Serial, c.Serial)
	}
	return c.Digest, nil
}

func newImageCommand(validate layer.PolicyValidator) *Command {
	return &Command{Name: "image", Summary: "build and verify signed image layers", Sub: []*Command{
		{Name: "build", Summary: "build a signed, reproducible layer (build host)",
			Run: func(ctx context.Context, env *Env, args []string) error {
				return runImageBuild(ctx, env, args, validate)
			}},
		{Name: "verify", Summary: "verify a layer's signature, hashes and hash tree", Run: runImageVerify},
	}}
}

const imageBuildUsage = `aegisbpf image build --agent FILE --policy FILE --version V --serial N --key FILE --out DIR [flags]

Builds aegisbpf_V.erofs, aegisbpf_V.verity, aegisbpf_V.manifest.json and
aegisbpf_V.manifest.sig in DIR. SOURCE_DATE_EPOCH (the variable, or
--source-date-epoch) is required and becomes every timestamp in the layer.`

func runImageBuild(ctx context.Context, env *Env, args []string, validate layer.PolicyValidator) error {
	fs := NewFlagSet(env, "image build", imageBuildUsage)
	var o layer.BuildOptions
	fs.StringVar(&o.Agent, "agent", "", "the static agent binary `FILE`")
	fs.StringVar(&o.Policy, "policy", "", "the policy `FILE`")
	fs.StringVar(&o.PolicySignature, "policy-sig", "", "the policy's detached signature `FILE` (default: the policy path + .sig)")
	fs.StringVar(&o.Units, "units", "systemd", "`DIR` holding aegisbpf*.service, aegisbpf*.socket, aegisbpf*.timer")
	fs.StringVar(&o.Version, "version", "", "layer `VERSION` (a-z, 0-9, '.', '_', '-')")
	fs.Uint64Var(&o.Serial, "serial", 0, "monotonic layer `SERIAL`, from 1")
	keyPath := fs.String("key", "", "Ed25519 private key `FILE` (mode 0600)")
	fs.StringVar(&o.OutputDir, "out", "", "output `DIR`")
	epoch := fs.String("source-date-epoch", "", "`SECONDS` since 1970 for every timestamp (default: $SOURCE_DATE_EPOCH)")
	rest, err := parseImageFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return Usagef("image build: unexpected arguments %q", rest)
	}
	var missing []string
	for _, r := range []struct{ flag, v string }{
		{"--agent", o.Agent}, {"--policy", o.Policy}, {"--version", o.Version}, {"--key", *keyPath}, {"--out", o.OutputDir},
	} {
		if r.v == "" {
			missing = append(missing, r.flag)
		}
	}
	if o.Serial == 0 {
		missing = append(missing, "--serial")
	}
	if len(missing) > 0 {
		return Usagef("image build: missing %s (see 'aegisbpf image build --help')", Join(missing))
	}
	if *epoch == "" && env.Getenv != nil {
		*epoch = env.Getenv("SOURCE_DATE_EPOCH")
	}
	if *epoch == "" {
		return Usagef("image build: SOURCE_DATE_EPOCH is required for a reproducible layer: set the variable or --source-date-epoch (e.g. $(git log -1 --format=%%ct))")
	}
	o.SourceDateEpoch, err = strconv.ParseInt(*epoch, 10, 64)
	if err != nil || o.SourceDateEpoch <= 0 {
		return Usagef("image build: SOURCE_DATE_EPOCH %q is not a positive UNIX time", *epoch)
	}
	if o.Key, err = keys.LoadPrivate(*keyPath); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	o.ValidatePolicy = validate

	res, err := layer.Build(ctx, o)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	m := res.Manifest
	for _, p := range []string{res.ErofsPath, res.VerityPath, res.ManifestPath, res.SignaturePath} {
		size := int64(-1)
		if fi, err := os.Stat(p); err == nil {
			size = fi.Size()
		}
		fmt.Fprintf(env.Stdout, "wrote %s (%d bytes)\n", p, size)
	}
	fmt.Fprintf(env.Stdout, "layer %s serial %d for %s, verity root hash %s, signed by key %s\n",
		m.Version, m.Serial, m.Architecture, m.Verity.RootHash, res.KeyID)
	return nil
}

const imageVerifyUsage = `aegisbpf image verify [--keys DIR] [--hashes-only] DIR|MANIFEST

Checks, in order: the signature sidecar (by name from the manifest) against
the trusted keys, the manifest, each artifact's size and sha256, the hash
tree's parameters, and (unless --hashes-only) every data block against the
verity root hash with veritysetup verify. DIR must hold exactly one manifest.`

func runImageVerify(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "image verify", imageVerifyUsage)
	keysDir := fs.String("keys", defaultTrustedKeys, "`DIR` of trusted public keys (*.pub)")
	hashesOnly := fs.Bool("hashes-only", false, "check signature, manifest and sha256 sums only; skip veritysetup verify")
	rest, err := parseImageFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return Usagef("image verify: want one layer directory or manifest, got %d arguments", len(rest))
	}
	manifest := rest[0]
	if fi, err := os.Stat(manifest); err == nil && fi.IsDir() {
		if manifest, err = layer.FindManifest(manifest); err != nil {
			return fmt.Errorf("image verify: %w", err)
		}
	}
	ring, err := keys.LoadRing(*keysDir)
	if err != nil {
		return fmt.Errorf("image verify: %w", err)
	}
	var l *layer.Layer
	if *hashesOnly {
		l, err = layer.VerifyHashes(manifest, ring)
	} else {
		l, err = layer.Verify(ctx, manifest, ring)
	}
	if err != nil {
		return fmt.Errorf("image verify: %w", err)
	}
	m := l.Manifest
	what := "signature, manifest, sha256 sums and dm-verity hash tree"
	if *hashesOnly {
		what = "signature, manifest and sha256 sums (hash tree not checked against its data)"
	}
	fmt.Fprintf(env.Stdout, "OK %s: layer %s serial %d, signed by key %s, verity root hash %s\n   verified: %s\n",
		l.ManifestPath, m.Version, m.Serial, l.KeyID, m.Verity.RootHash, what)
	return nil
}

// parseImageFlags parses flags given before or after the positional
// arguments; everything after "--" is positional.
func parseImageFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var after []string
	for i, a := range args {
		if a == "--" {
			args, after = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := ParseFlags(fs, args); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			return append(pos, after...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
