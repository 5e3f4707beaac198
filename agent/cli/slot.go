package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
)

// slotCommand groups the on-host A/B slot verbs (docs/SLOTS.md).
func slotCommand() *Command {
	return &Command{Name: "slot", Summary: "install, switch, activate and roll back image layers (A/B)", Sub: []*Command{
		{Name: "status", Summary: "show the slots and the last transitions", Run: runSlotStatus},
		{Name: "install", Summary: "verify a signed layer and copy it into the idle slot", Run: runSlotInstall},
		{Name: "switch", Summary: "make the installed idle slot pending", Run: runSlotSwitch},
		{Name: "activate", Summary: "merge the pending (or good) slot's layer and (re)start the agent", Run: runSlotActivate},
		{Name: "mark-good", Summary: "keep the active pending slot", Run: runSlotMarkGood},
		{Name: "rollback", Summary: "go back to the last good slot", Run: runSlotRollback},
		{Name: "probation", Summary: "mark the pending slot good once the agent proved healthy (unit)", Run: runSlotProbation},
		{Name: "agent-stopped", Summary: "roll back a slot on probation whose agent failed (ExecStopPost)", Run: runSlotAgentStopped},
	}}
}

// slotFlags registers the flags every slot verb has and returns the
// manager they configure.
func slotFlags(fs *flag.FlagSet, env *Env) *slot.Manager {
	m := &slot.Manager{Sys: slot.Host{Out: env.Stderr}, Out: env.Stdout}
	fs.StringVar(&m.Dir, "dir", slot.DefaultDir, "the slots' directory (state.json, slots/)")
	fs.StringVar(&m.KeysDir, "keys", slot.DefaultKeysDir, "the base OS's trusted keys")
	fs.DurationVar(&m.LockWait, "lock-wait", time.Minute, "how long to wait for another slot command")
	return m
}

func parseSlotFlags(fs *flag.FlagSet, args []string, nargs int) error {
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != nargs {
		return Usagef("%s takes %d argument(s), got %d", fs.Name(), nargs, fs.NArg())
	}
	return nil
}

func runSlotStatus(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot status", "aegisbpf slot status [--json]")
	m := slotFlags(fs, env)
	asJSON := fs.Bool("json", false, "print the state file's contents as JSON")
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprint(env.Stdout, slot.Describe(st))
	return nil
}

func runSlotInstall(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot install", "aegisbpf slot install [--as-good] LAYER-DIR-or-MANIFEST")
	m := slotFlags(fs, env)
	asGood := fs.Bool("as-good", false, "image builders: install into slot a of an empty --dir and mark it good")
	if err := parseSlotFlags(fs, args, 1); err != nil {
		return err
	}
	if *asGood {
		return m.Seed(ctx, fs.Arg(0))
	}
	return m.Install(ctx, fs.Arg(0))
}

func runSlotSwitch(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot switch", "aegisbpf slot switch [--tries N]")
	m := slotFlags(fs, env)
	tries := fs.Int("tries", slot.DefaultTries, "activations (boots included) the slot gets before it must be marked good")
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	return m.Switch(ctx, *tries)
}

func runSlotActivate(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot activate", "aegisbpf slot activate [--boot]")
	m := slotFlags(fs, env)
	var o slot.ActivateOptions
	fs.BoolVar(&o.Boot, "boot", false, "run as the boot-time activation unit (queue the agent's start)")
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	return m.Activate(ctx, o)
}

func runSlotMarkGood(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot mark-good", "aegisbpf slot mark-good")
	m := slotFlags(fs, env)
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	return m.MarkGood(ctx)
}

func runSlotRollback(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot rollback", "aegisbpf slot rollback [--auto] [--reason TEXT]")
	m := slotFlags(fs, env)
	var o slot.RollbackOptions
	fs.BoolVar(&o.Auto, "auto", false, "the failure path: roll back only a slot on probation, then recover the agent")
	fs.StringVar(&o.Reason, "reason", "", "why, for the state's history")
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	if o.Auto {
		o.Agent = slot.AgentRecover
		if o.Reason == "" {
			o.Reason = "the agent unit failed (OnFailure)"
		}
	} else {
		o.Agent = slot.AgentRestart
	}
	return m.Rollback(ctx, o)
}

func runSlotProbation(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot probation", "aegisbpf slot probation [--for D] [--limit D]")
	m := slotFlags(fs, env)
	d := fs.Duration("for", 30*time.Second, "how long the agent must stay healthy")
	limit := fs.Duration("limit", 5*time.Minute, "roll back when the agent has not been healthy for --for within this")
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	if *d <= 0 || *limit < *d {
		return Usagef("slot probation: need 0 < --for <= --limit")
	}
	return m.Probation(ctx, *d, *limit, time.Second)
}

func runSlotAgentStopped(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "slot agent-stopped", "aegisbpf slot agent-stopped (reads SERVICE_RESULT, EXIT_CODE, EXIT_STATUS)")
	m := slotFlags(fs, env)
	if err := parseSlotFlags(fs, args, 0); err != nil {
		return err
	}
	err := m.AgentStopped(ctx, env.Getenv("SERVICE_RESULT"), env.Getenv("EXIT_CODE"), env.Getenv("EXIT_STATUS"))
	if errors.Is(err, slot.ErrRefused) {
		fmt.Fprintln(env.Stderr, err)
		return nil
	}
	return err
}
