package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Exit codes of channel advance besides 0 (a wave opened, or nothing left
// to open) and 1 (an error).
const (
	exitWait = 3 // the gate says not yet
	exitHalt = 4 // the gate halted the release
)

// channelCommand groups the build-host channel verbs (docs/ROLLOUT_PLAN.md).
func channelCommand() *Command {
	return &Command{Name: "channel", Summary: "publish a signed update channel; open waves or halt from fleet health (build host)", Sub: []*Command{
		{Name: "publish", Summary: "sign a new channel edition, adding releases from layer directories", Run: runChannelPublish},
		{Name: "advance", Summary: "read fleet health from Prometheus; open the next wave or halt the release", Run: runChannelAdvance},
		{Name: "halt", Summary: "halt a release: hosts stop installing it", Run: runChannelHalt},
	}}
}

// channelFlags are the flags every channel verb has.
type channelFlags struct {
	key, from, dir, oci string
	ttl                 time.Duration
}

func (f *channelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.key, "key", "", "the channel signing key `FILE` (from aegisbpf keygen)")
	fs.StringVar(&f.from, "from", "", "the current edition's channel.json (default: --dir's channel.json when there is one)")
	fs.StringVar(&f.dir, "dir", "", "write the static tree (channel.json, channel.json.sig, releases/) into `DIR`")
	fs.StringVar(&f.oci, "oci", "", "push to the OCI `REPOSITORY` (host[:port]/name): releases by digest, the channel at the tag of its name")
	fs.DurationVar(&f.ttl, "expires", 7*24*time.Hour, "how long the edition is valid: hosts refuse it afterwards (re-publish before)")
}

func (f *channelFlags) check() (ed25519.PrivateKey, error) {
	if f.key == "" {
		return nil, Usagef("--key FILE is required")
	}
	if f.dir == "" && f.oci == "" {
		return nil, Usagef("give --dir, --oci or both")
	}
	if f.ttl <= 0 {
		return nil, Usagef("--expires must be positive")
	}
	return keys.LoadPrivate(f.key)
}

func (f *channelFlags) outputs() update.Outputs { return update.Outputs{Dir: f.dir, OCI: f.oci} }

// publishNext signs and publishes the edition after c that carries
// decision d on release v.
func (f *channelFlags) publishNext(ctx context.Context, key ed25519.PrivateKey, c *update.Channel, v string, d update.Decision, now time.Time) (*update.Channel, error) {
	n, err := update.Next(c, v, d, now, f.ttl)
	if err != nil {
		return nil, err
	}
	return n, update.Publish(ctx, n, key, f.outputs(), nil)
}

// previous reads the current edition: --from, else --dir's channel.json;
// nil when neither exists (the first edition).
func (f *channelFlags) previous() (*update.Channel, error) {
	p := f.from
	if p == "" && f.dir != "" {
		p = filepath.Join(f.dir, update.ChannelFile)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	if p == "" {
		return nil, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	c, err := update.ParseChannel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

const channelPublishUsage = `aegisbpf channel publish --key FILE --name NAME (--dir DIR | --oci REPO) [flags] [LAYER-DIR...]

Signs the next edition of the channel (serial + 1, new expiry) with the
releases of the current edition and one new release per LAYER-DIR, whose
first wave opens at --start and the others when 'channel advance' says.
Without LAYER-DIR it re-signs the current edition (do so before it expires).`

func runChannelPublish(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "channel publish", channelPublishUsage)
	var f channelFlags
	f.register(fs)
	name := fs.String("name", "", "the channel's name (the OCI tag); default: the current edition's")
	keysDir := fs.String("keys", "", "verify the layers against this key `DIR` (default: the public half of --key)")
	waves := fs.String("waves", "0.05,0.25,0.5,1", "the fractions of the fleet each wave of a new release opens to")
	start := fs.String("start", "now", "when the first wave of a new release opens (RFC 3339 or now)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	key, err := f.check()
	if err != nil {
		return err
	}
	fractions, err := parseFractions(*waves)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	first := now
	if *start != "now" {
		if first, err = time.Parse(time.RFC3339, *start); err != nil {
			return Usagef("--start: %v", err)
		}
	}
	ring := keys.Ring{keys.ID(key.Public().(ed25519.PublicKey)): key.Public().(ed25519.PublicKey)}
	if *keysDir != "" {
		if ring, err = keys.LoadRing(*keysDir); err != nil {
			return err
		}
	}
	c, err := f.previous()
	if err != nil {
		return err
	}
	if c == nil {
		if *name == "" {
			return Usagef("--name is required for a channel's first edition")
		}
		c = &update.Channel{FormatVersion: update.ChannelFormat, Name: *name, Releases: []update.Release{}}
	} else if *name != "" && *name != c.Name {
		return fmt.Errorf("the current edition is channel %q, not %q", c.Name, *name)
	}
	layers := map[string]string{}
	for _, dir := range fs.Args() {
		r, src, err := update.NewRelease(dir, ring, fractions, first)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if c.Release(r.Version) != nil {
			return fmt.Errorf("%s: release %s is in the channel already", dir, r.Version)
		}
		if n := len(c.Releases); n > 0 && r.Serial <= c.Releases[n-1].Serial {
			return fmt.Errorf("%s: release %s has serial %d, not above %d of %s", dir, r.Version, r.Serial, c.Releases[n-1].Serial, c.Releases[n-1].Version)
		}
		c.Releases = append(c.Releases, *r)
		layers[r.Version] = src
	}
	c.Serial++
	c.Issued, c.Expires = now, now.Add(f.ttl)
	if err := update.Publish(ctx, c, key, f.outputs(), layers); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "channel %s serial %d, expires %s: %d releases\n", c.Name, c.Serial, c.Expires.Format(time.RFC3339), len(c.Releases))
	for _, r := range c.Releases {
		fmt.Fprintf(env.Stdout, "  %s (serial %d): open to %g of the fleet%s\n", r.Version, r.Serial, r.OpenFraction(now), haltNote(&r))
	}
	return nil
}

func haltNote(r *update.Release) string {
	if r.Halted == nil {
		return ""
	}
	return ", halted: " + r.Halted.Reason
}

func parseFractions(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, Usagef("--waves: %q is not a number", p)
		}
		out = append(out, v)
	}
	return out, nil
}

// current reads the current edition and the release a verb acts on: the
// named one, or the newest not halted.
func (f *channelFlags) current(version string) (*update.Channel, string, error) {
	c, err := f.previous()
	if err != nil {
		return nil, "", err
	}
	if c == nil {
		return nil, "", Usagef("no current edition: give --from FILE or a --dir holding channel.json")
	}
	if version == "" {
		for _, r := range c.Releases {
			if r.Halted == nil {
				version = r.Version
			}
		}
	}
	if c.Release(version) == nil {
		return nil, "", fmt.Errorf("channel %s serial %d has no release %q", c.Name, c.Serial, version)
	}
	return c, version, nil
}

func runChannelAdvance(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "channel advance", "aegisbpf channel advance --key FILE --prometheus URL (--dir DIR | --oci REPO) [--release V] [thresholds]")
	var f channelFlags
	f.register(fs)
	version := fs.String("release", "", "the release to advance (default: the newest not halted)")
	prom := fs.String("prometheus", "", "the Prometheus server scraping the fleet (`URL`, e.g. http://prometheus:9090)")
	o := update.DefaultGate
	fs.Float64Var(&o.MaxRollbackRatio, "max-rollback-ratio", o.MaxRollbackRatio, "halt when rollbacks / installs of the release exceed this")
	fs.IntVar(&o.MaxNotEnforcing, "max-not-enforcing", o.MaxNotEnforcing, "halt when more hosts running the release than this are not enforcing")
	fs.Float64Var(&o.MinUpdated, "min-updated", o.MinUpdated, "open the next wave only when this share of the fleet checked the current edition and this share of the open waves' hosts runs the release")
	fs.DurationVar(&o.Bake, "bake", o.Bake, "and only this long after the last wave opened")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	key, err := f.check()
	if err != nil {
		return err
	}
	if *prom == "" {
		return Usagef("--prometheus URL is required")
	}
	c, v, err := f.current(*version)
	if err != nil {
		return err
	}
	now := time.Now()
	h, err := update.ReadHealth(ctx, &update.Prometheus{Address: *prom, Client: update.DefaultClient()}, v, c.Serial)
	if err != nil {
		return err
	}
	d := update.Decide(c.Release(v), h, o, now)
	fmt.Fprintf(env.Stdout, "%s: %s\n", d.Action, d.Reason)
	switch d.Action {
	case update.GateWait:
		return &ExitError{Code: exitWait, Err: fmt.Errorf("not yet: %s", d.Reason)}
	case update.GateDone:
		return nil
	}
	n, err := f.publishNext(ctx, key, c, v, d, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "channel %s serial %d published\n", n.Name, n.Serial)
	if d.Action == update.GateHalt {
		return &ExitError{Code: exitHalt, Err: fmt.Errorf("release %s halted: %s", v, d.Reason)}
	}
	return nil
}

func runChannelHalt(ctx context.Context, env *Env, args []string) error {
	fs := NewFlagSet(env, "channel halt", "aegisbpf channel halt --key FILE --release V --reason TEXT (--dir DIR | --oci REPO)")
	var f channelFlags
	f.register(fs)
	version := fs.String("release", "", "the release to halt")
	reason := fs.String("reason", "", "why, for the channel and the hosts")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	key, err := f.check()
	if err != nil {
		return err
	}
	if *version == "" || *reason == "" {
		return Usagef("channel halt: --release and --reason are required")
	}
	c, v, err := f.current(*version)
	if err != nil {
		return err
	}
	n, err := f.publishNext(ctx, key, c, v, update.Decision{Action: update.GateHalt, Reason: *reason}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "release %s halted; channel %s serial %d published\n", v, n.Name, n.Serial)
	return nil
}
