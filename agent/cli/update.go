package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// channelEnv names the channel location when --channel is not given (the
// update unit's EnvironmentFile sets it).
const channelEnv = "AEGISBPF_CHANNEL"

// updateCommand groups the on-host fleet update verbs (docs/ROLLOUT_PLAN.md).
func updateCommand() *Command {
	return &Command{Name: "update", Summary: "follow a signed channel: check, install this host's wave, hold, pin", Sub: []*Command{
		{Name: "check", Summary: "fetch and verify the channel; say what this host would install", Run: runUpdateCheck},
		{Name: "apply", Summary: "install the release whose wave includes this host, through the slots (timer)", Run: runUpdateApply},
		{Name: "hold", Summary: "stop installs on this host (--off resumes)", Run: runUpdateHold},
		{Name: "pin", Summary: "install exactly VERSION when the channel offers it (--off unpins)", Run: runUpdatePin},
		{Name: "status", Summary: "print the updater's state", Run: runUpdateStatus},
	}}
}

// updateFlags registers the flags of the update verbs.
type updateFlags struct {
	dir, slotsDir, keysDir, channel, machineIDFile string
	lockWait, wait                                 time.Duration
	reserve                                        int64
}

func (f *updateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "dir", update.DefaultDir, "the updater's directory (state.json, staging/)")
	fs.StringVar(&f.slotsDir, "slots-dir", slot.DefaultDir, "the A/B slots' directory")
	fs.StringVar(&f.keysDir, "keys", slot.DefaultKeysDir, "the base OS's trusted keys (channel and layers)")
	fs.StringVar(&f.channel, "channel", "", "the channel `LOCATION` (https://.../channel.json or oci://host/repo:tag; default $"+channelEnv+")")
	fs.StringVar(&f.machineIDFile, "machine-id", update.DefaultMachineIDFile, "the machine id file")
	fs.DurationVar(&f.lockWait, "lock-wait", time.Minute, "how long to wait for another update or slot command")
	fs.DurationVar(&f.wait, "wait", 6*time.Minute, "apply: how long to wait for the probation's verdict")
	fs.Int64Var(&f.reserve, "reserve", update.DefaultReserve, "bytes to leave free beyond the download and the slot copy")
}

// updater builds the Updater the flags describe; hold and pin need no
// channel (needChannel false).
func (f *updateFlags) updater(env *Env, needChannel bool) (*update.Updater, error) {
	u := &update.Updater{Dir: f.dir, Out: env.Stdout, Reserve: f.reserve, LockWait: f.lockWait, RetryDelay: 2 * time.Second}
	if !needChannel {
		return u, nil
	}
	loc := f.channel
	if loc == "" {
		loc = env.Getenv(channelEnv)
	}
	if loc == "" {
		return nil, Usagef("no channel: pass --channel LOCATION or set %s (/etc/aegisbpf/update.env for the timer)", channelEnv)
	}
	src, err := update.NewSource(loc, update.DefaultClient())
	if err != nil {
		return nil, err
	}
	ring, err := keys.LoadRing(f.keysDir)
	if err != nil {
		return nil, fmt.Errorf("loading the base OS's trusted keys: %w", err)
	}
	id, err := update.ReadMachineID(f.machineIDFile)
	if err != nil {
		return nil, err
	}
	m := &slot.Manager{Dir: f.slotsDir, KeysDir: f.keysDir, Sys: slot.Host{Out: env.Stderr}, Out: env.Stdout, LockWait: f.lockWait}
	u.Source, u.Ring, u.MachineID = src, ring, id
	u.Host = update.SlotHost{Slots: m, Wait: f.wait}
	return u, nil
}

func parseUpdate(env *Env, name, usage string, args []string, nargs int, extra func(fs *flag.FlagSet)) (*updateFlags, *flag.FlagSet, error) {
	fs := NewFlagSet(env, name, usage)
	var f updateFlags
	f.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := ParseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > nargs {
		return nil, nil, Usagef("%s: unexpected argument %q", name, fs.Arg(nargs))
	}
	return &f, fs, nil
}

func runUpdateCheck(ctx context.Context, env *Env, args []string) error {
	return runUpdate(ctx, env, args, "check", (*update.Updater).Check)
}

func runUpdateApply(ctx context.Context, env *Env, args []string) error {
	return runUpdate(ctx, env, args, "apply", (*update.Updater).Apply)
}

// runUpdate runs check or apply against the channel.
func runUpdate(ctx context.Context, env *Env, args []string, verb string, run func(*update.Updater, context.Context) (*update.Plan, error)) error {
	f, _, err := parseUpdate(env, "update "+verb, "aegisbpf update "+verb+" [--channel LOCATION]", args, 0, nil)
	if err != nil {
		return err
	}
	u, err := f.updater(env, true)
	if err != nil {
		return err
	}
	_, err = run(u, ctx)
	return err
}

func runUpdateHold(ctx context.Context, env *Env, args []string) error {
	var off bool
	f, _, err := parseUpdate(env, "update hold", "aegisbpf update hold [--off]", args, 0, func(fs *flag.FlagSet) {
		fs.BoolVar(&off, "off", false, "resume installs")
	})
	if err != nil {
		return err
	}
	u, _ := f.updater(env, false)
	if err := u.Hold(ctx, !off); err != nil {
		return err
	}
	if off {
		fmt.Fprintln(env.Stdout, "installs resumed")
	} else {
		fmt.Fprintln(env.Stdout, "held: 'aegisbpf update apply' installs nothing until 'aegisbpf update hold --off'")
	}
	return nil
}

func runUpdatePin(ctx context.Context, env *Env, args []string) error {
	var off bool
	f, fs, err := parseUpdate(env, "update pin", "aegisbpf update pin VERSION | --off", args, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&off, "off", false, "remove the pin: follow the waves again")
	})
	if err != nil {
		return err
	}
	v := fs.Arg(0)
	if off == (v != "") {
		return Usagef("update pin: give a VERSION or --off")
	}
	u, _ := f.updater(env, false)
	if err := u.Pin(ctx, v); err != nil {
		return err
	}
	if off {
		fmt.Fprintln(env.Stdout, "unpinned: following the waves")
	} else {
		fmt.Fprintf(env.Stdout, "pinned to %s: installed when the channel offers it, whatever its waves\n", v)
	}
	return nil
}

func runUpdateStatus(ctx context.Context, env *Env, args []string) error {
	f, _, err := parseUpdate(env, "update status", "aegisbpf update status", args, 0, nil)
	if err != nil {
		return err
	}
	s, err := update.LoadState(f.dir)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// ExitError carries a process exit code other than 1 with its message.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }
