package cli

import (
	"context"
	"fmt"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// keygenCommand creates a signing key pair on the build host.
func keygenCommand() *Command {
	return &Command{Name: "keygen", Summary: "create an Ed25519 signing key pair", Run: runKeygen}
}

func runKeygen(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "keygen", "aegisbpf keygen --out BASE")
	out := fs.String("out", "", "write the private key to `BASE`.key (mode 0600) and the public key to BASE.pub")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return Usagef("keygen: --out BASE is required")
	}
	if fs.NArg() != 0 {
		return Usagef("keygen: unexpected argument %q", fs.Arg(0))
	}
	pub, priv, err := keys.Generate()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := keys.WriteKeyPair(*out, pub, priv); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(env.Stdout, "key id:      %s\nprivate key: %s.key (mode 0600: keep it on the build host)\npublic key:  %s.pub (install it in the trusted key directory)\n",
		keys.ID(pub), *out, *out)
	return nil
}
