package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/policy"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// defaultValidity is how long a signature holds when policy sign is not
// given --not-after.
const defaultValidity = 365 * 24 * time.Hour

// policyCommand groups the policy verbs (docs/POLICY.md, "Commands").
func policyCommand() *Command {
	return &Command{Name: "policy", Summary: "check, show, sign and verify policies", Sub: []*Command{
		{Name: "check", Summary: "validate policy files and list every problem", Run: runPolicyCheck},
		{Name: "show", Summary: "print the compiled form of a policy", Run: runPolicyShow},
		{Name: "sign", Summary: "sign a policy with a private key (build host)", Run: runPolicySign},
		{Name: "verify", Summary: "verify a policy's signature against trusted keys", Run: runPolicyVerify},
	}}
}

// parseInterleaved parses flags given before or after the positional
// arguments; everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := ParseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadPolicy reads and parses a policy file. On problems it prints them
// to stdout and returns an error that counts them.
func loadPolicy(env *Env, path string) (*policy.Policy, []byte, error) {
	src, err := policy.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	p, err := policy.Parse(path, src)
	var probs policy.Problems
	if errors.As(err, &probs) {
		for _, pr := range probs {
			fmt.Fprintln(env.Stdout, pr.String())
		}
		return nil, nil, fmt.Errorf("%s: %d %s", path, len(probs), plural(len(probs), "problem"))
	}
	if err != nil {
		return nil, nil, err
	}
	return p, src, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func runPolicyCheck(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "policy check", "aegisbpf policy check FILE...")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return Usagef("policy check: no policy files given")
	}
	var errs []error
	for _, f := range files {
		p, _, err := loadPolicy(env, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(env.Stdout, "%s: ok (mode %s, serial %d, %d %s)\n", f, p.Mode(), p.Serial(), p.Len(), plural(p.Len(), "rule"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("policy check failed:\n%w", errors.Join(errs...))
	}
	return nil
}

func runPolicyShow(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "policy show", "aegisbpf policy show [--json] FILE")
	asJSON := fs.Bool("json", false, "print the whole compiled form as JSON")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return Usagef("policy show: want one policy file, got %d", len(files))
	}
	p, _, err := loadPolicy(env, files[0])
	if err != nil {
		return err
	}
	c := policy.Compile(p)
	if *asJSON {
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding compiled policy: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
		return nil
	}
	return c.WriteSummary(env.Stdout, files[0])
}

func runPolicySign(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "policy sign",
		"aegisbpf policy sign --key KEY [--not-before TIME] [--not-after DURATION|TIME] [--out FILE.sig] FILE")
	keyPath := fs.String("key", "", "private key `FILE` (from aegisbpf keygen)")
	notBefore := fs.String("not-before", "", "start of validity, RFC 3339 (default: now)")
	notAfter := fs.String("not-after", "", "end of validity: a duration from the start such as 2160h or 90d, or an RFC 3339 time (default: 365d)")
	out := fs.String("out", "", "signature `FILE` (default: the policy file name plus .sig)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return Usagef("policy sign: want one policy file, got %d", len(files))
	}
	if *keyPath == "" {
		return Usagef("policy sign: --key is required")
	}
	start := time.Now().UTC().Truncate(time.Second)
	if *notBefore != "" {
		if start, err = time.Parse(time.RFC3339, *notBefore); err != nil {
			return Usagef("policy sign: --not-before: %v", err)
		}
	}
	end := start.Add(defaultValidity)
	if *notAfter != "" {
		if end, err = parseNotAfter(*notAfter, start); err != nil {
			return Usagef("policy sign: --not-after: %v", err)
		}
	}
	priv, err := keys.LoadPrivate(*keyPath)
	if err != nil {
		return err
	}
	p, src, err := loadPolicy(env, files[0])
	if err != nil {
		return fmt.Errorf("refusing to sign an invalid policy: %w", err)
	}
	sig, err := sign.Sign(priv, src, p.Serial(), start, end)
	if err != nil {
		return err
	}
	sigPath := *out
	if sigPath == "" {
		sigPath = files[0] + ".sig"
	}
	if err := atomicfile.Write(sigPath, sig, 0o644); err != nil {
		return err
	}
	parsed, err := sign.Parse(sig)
	if err != nil {
		return fmt.Errorf("reading back the signature: %w", err)
	}
	st := parsed.Statement
	fmt.Fprintf(env.Stdout, "signed %s\n  sha256:  %s\n  serial:  %d\n  key id:  %s\n  valid:   %s to %s\n  wrote:   %s\n",
		files[0], st.PolicySHA256, st.Serial, st.KeyID, st.NotBefore, st.NotAfter, sigPath)
	return nil
}

// parseNotAfter reads a duration (Go syntax, or whole days as "90d") from
// start, or an RFC 3339 time.
func parseNotAfter(s string, start time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return start.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("duration %s is not positive", s)
		}
		return start.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (2160h, 90d) nor an RFC 3339 time", s)
	}
	return t, nil
}

func runPolicyVerify(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "policy verify", "aegisbpf policy verify --keys DIR [--sig FILE.sig] [--last-serial N] FILE")
	keyDir := fs.String("keys", "", "`DIR`ectory of trusted public keys (*.pub)")
	sigPath := fs.String("sig", "", "signature `FILE` (default: the policy file name plus .sig)")
	lastSerial := fs.Uint64("last-serial", 0, "refuse a policy whose serial is lower than `N`")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return Usagef("policy verify: want one policy file, got %d", len(files))
	}
	if *keyDir == "" {
		return Usagef("policy verify: --keys is required")
	}
	if *sigPath == "" {
		*sigPath = files[0] + ".sig"
	}
	ring, err := keys.LoadRing(*keyDir)
	if err != nil {
		return err
	}
	p, src, err := loadPolicy(env, files[0])
	if err != nil {
		return err
	}
	envelope, err := sign.ReadFile(*sigPath)
	if err != nil {
		return err
	}
	st, err := sign.Verify(envelope, src, p.Serial(), ring, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", *sigPath, err)
	}
	if err := policy.CheckSerial(p.Serial(), *lastSerial); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: ok: signed by key %s, serial %d, valid %s to %s\n",
		files[0], st.KeyID, st.Serial, st.NotBefore, st.NotAfter)
	return nil
}
