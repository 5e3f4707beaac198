package cli

import (
	"context"
	"errors"
)

// keygenCommand is owned by the policy work (issue 3).
func keygenCommand() *Command {
	return &Command{Name: "keygen", Summary: "create an Ed25519 signing key pair",
		Run: func(ctx context.Context, env *Env, args []string) error { return errors.New("keygen: not implemented yet") }}
}
