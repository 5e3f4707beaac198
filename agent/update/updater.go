package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Host is what the updater needs of the machine: what it runs, and a way
// to run a staged release. SlotHost is the real one.
type Host interface {
	// Installed reports what the slots run.
	Installed(ctx context.Context) (Installed, error)
	// Activate installs the verified, staged release in dir into the idle
	// slot, switches to it, activates it and waits for the verdict of its
	// probation.
	Activate(ctx context.Context, dir string, r *Release) (Outcome, error)
}

// Installed is what a host runs.
type Installed struct {
	Version string
	Serial  uint64
	// Floor is the anti-rollback floor: no release below is installed.
	Floor uint64
	// Busy says why no release can start now (a slot on probation).
	Busy string
	// Bad lists versions rolled back on this host.
	Bad []string
}

// Outcome is the verdict on an activated release.
type Outcome struct {
	Kept   bool   // marked good after probation
	Detail string // why not, or what happened
}

// Updater checks a channel and installs what it offers this host.
type Updater struct {
	Dir       string // DefaultDir: state.json, staging/
	Source    Source
	Ring      keys.Ring // the base OS's trusted keys
	MachineID string
	Host      Host
	Out       io.Writer
	Now       func() time.Time
	// Reserve is free space kept beyond a release's download and slot copy.
	Reserve  int64
	LockWait time.Duration
	// RetryDelay is the pause before fetching a channel again whose
	// signature did not verify.
	RetryDelay time.Duration
}

// DefaultReserve is the free space an update leaves on /var beyond the
// release and its slot copy.
const DefaultReserve = 64 << 20

// Plan is what a check found.
type Plan struct {
	Channel   *Channel
	Installed Installed
	// Newest is the newest release above the installed one that is not
	// halted or bad here; Position is this host's place in its rollout
	// and Open the fraction of the fleet it is open to.
	Newest   *Release
	Position float64
	Open     float64
	// Target is the release this host installs now, nil for none.
	Target *Release
	Result string
	Detail string
}

func (u *Updater) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Updater) say(format string, args ...any) {
	if u.Out != nil {
		fmt.Fprintf(u.Out, format+"\n", args...)
	}
}

// locked runs fn under the update lock with the state; the state is saved
// afterwards whatever fn returns.
func (u *Updater) locked(ctx context.Context, fn func(s *State) error) error {
	if err := os.MkdirAll(u.Dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", u.Dir, err)
	}
	unlock, err := atomicfile.Lock(ctx, filepath.Join(u.Dir, lockFile), u.LockWait, "update command")
	if err != nil {
		return err
	}
	defer unlock()
	s, err := LoadState(u.Dir)
	if err != nil {
		return err
	}
	err = fn(s)
	if serr := saveState(u.Dir, s); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// Check fetches and verifies the channel and says what this host would
// install; it installs nothing.
func (u *Updater) Check(ctx context.Context) (*Plan, error) {
	var p *Plan
	err := u.locked(ctx, func(s *State) error {
		var err error
		p, err = u.check(ctx, s)
		return err
	})
	return p, err
}

// Apply checks the channel and, when this host's wave of a newer release
// is open (or the host is pinned to it), downloads it, verifies it and
// hands it to the host's slots; it returns once the release passed its
// probation or was rolled back.
func (u *Updater) Apply(ctx context.Context) (*Plan, error) {
	var p *Plan
	err := u.locked(ctx, func(s *State) error {
		var err error
		if p, err = u.check(ctx, s); err != nil || p.Target == nil {
			return err
		}
		return u.apply(ctx, s, p)
	})
	return p, err
}

func (u *Updater) check(ctx context.Context, s *State) (*Plan, error) {
	now := u.now()
	fail := func(result string, err error) (*Plan, error) {
		s.LastCheck = &Check{Time: now.UTC(), Result: result, Detail: err.Error()}
		return nil, err
	}
	inst, err := u.Host.Installed(ctx)
	if err != nil {
		return fail(ResultFailed, fmt.Errorf("reading the slots: %w", err))
	}
	s.Current = inst.Version
	for _, v := range inst.Bad { // rolled back after an earlier run returned (a reboot, a later failure)
		if rec := s.Releases[v]; rec != nil && rec.Bad == "" {
			rec.Rollbacks++
			rec.Bad = "rolled back by the slots"
		}
	}
	c, seen, err := u.fetchChannel(ctx, now, s.Channel)
	if errors.Is(err, ErrSignature) {
		// A static tree is two files: a publisher between its two writes
		// gives a signature of the other edition. Once more, a bit later.
		select {
		case <-ctx.Done():
			return fail(ResultFetch, ctx.Err())
		case <-time.After(u.RetryDelay):
		}
		c, seen, err = u.fetchChannel(ctx, now, s.Channel)
	}
	if errors.Is(err, errFetch) {
		return fail(ResultFetch, err)
	}
	if err != nil {
		return fail(resultOf(err), fmt.Errorf("channel from %s refused: %w", u.Source, err))
	}
	s.Channel = seen
	p := plan(s, c, inst, u.MachineID, now)
	s.Available, s.Position, s.WaveOpen = "", 0, false
	if p.Newest != nil {
		s.Available, s.Position = p.Newest.Version, p.Position
		s.WaveOpen = p.Position < p.Open
	}
	s.LastCheck = &Check{Time: now.UTC(), Result: p.Result, Detail: p.Detail}
	u.say("%s", p.Detail)
	return p, nil
}

// plan decides what this host does with channel c.
func plan(s *State, c *Channel, inst Installed, machineID string, now time.Time) *Plan {
	p := &Plan{Channel: c, Installed: inst}
	var candidates []*Release
	for i := range c.Releases {
		r := &c.Releases[i]
		if r.Serial <= inst.Serial || r.Serial < inst.Floor || r.Halted != nil || slices.Contains(inst.Bad, r.Version) {
			continue
		}
		if rec := s.Releases[r.Version]; rec != nil && rec.Bad != "" {
			continue
		}
		candidates = append(candidates, r) // sorted by serial
	}
	if len(candidates) > 0 {
		p.Newest = candidates[len(candidates)-1]
		p.Position = Position(machineID, p.Newest.Version)
		p.Open = p.Newest.OpenFraction(now)
	}
	for _, r := range slices.Backward(candidates) {
		if s.Pin != "" {
			if r.Version == s.Pin {
				p.Target = r
				break
			}
			continue
		}
		if Position(machineID, r.Version) < r.OpenFraction(now) {
			p.Target = r
			break
		}
	}
	current := inst.Version
	if current == "" {
		current = "nothing"
	}
	switch {
	case s.Pin != "" && p.Target == nil && s.Pin == inst.Version:
		p.Result, p.Detail = ResultUpToDate, fmt.Sprintf("pinned to %s, which runs", s.Pin)
	case s.Pin != "" && p.Target == nil:
		p.Result, p.Detail = ResultWaiting, fmt.Sprintf("pinned to %s, which channel %s (serial %d) does not offer above %s", s.Pin, c.Name, c.Serial, current)
	case p.Target != nil && s.Hold:
		p.Result, p.Detail = ResultHeld, fmt.Sprintf("held: %s would install %s", current, p.Target.Version)
		p.Target = nil
	case p.Target != nil && inst.Busy != "":
		p.Result, p.Detail = ResultBusy, fmt.Sprintf("%s: %s waits", inst.Busy, p.Target.Version)
		p.Target = nil
	case p.Target != nil:
		why := fmt.Sprintf("its wave is open (position %.4f, open to %.4f of the fleet)", Position(machineID, p.Target.Version), p.Target.OpenFraction(now))
		if s.Pin != "" {
			why = "pinned"
		}
		p.Result, p.Detail = ResultAvailable, fmt.Sprintf("%s → %s (serial %d): %s", current, p.Target.Version, p.Target.Serial, why)
	case p.Newest != nil:
		p.Result, p.Detail = ResultWaiting, fmt.Sprintf("%s: %s waits for its wave (position %.4f, open to %.4f of the fleet)", current, p.Newest.Version, p.Position, p.Open)
	default:
		p.Result, p.Detail = ResultUpToDate, fmt.Sprintf("%s is up to date with channel %s (serial %d)", current, c.Name, c.Serial)
	}
	return p
}

func (u *Updater) apply(ctx context.Context, s *State, p *Plan) error {
	r := p.Target
	fail := func(result string, err error) error {
		s.LastCheck = &Check{Time: u.now().UTC(), Result: result, Detail: err.Error()}
		return err
	}
	staging := filepath.Join(u.Dir, stagingDir)
	if err := clearStaging(staging, r.Version); err != nil {
		return fail(ResultFailed, fmt.Errorf("clearing the staging directory: %w", err))
	}
	dir := filepath.Join(staging, r.Version)
	u.say("downloading %s from %s", r.Version, u.Source)
	if err := stage(ctx, u.Source, r, dir, u.Reserve); err != nil {
		return fail(resultOf(err), fmt.Errorf("staging %s: %w", r.Version, err))
	}
	// The files match the channel; the layer's own signature and hashes
	// are checked again by the slots before anything is installed.
	l, err := layer.VerifyHashes(filepath.Join(dir, layer.ManifestName(r.Version)), u.Ring)
	if err == nil && (l.Manifest.Version != r.Version || l.Manifest.Serial != r.Serial) {
		err = fmt.Errorf("its manifest says %s serial %d, the channel %s serial %d", l.Manifest.Version, l.Manifest.Serial, r.Version, r.Serial)
	}
	if err != nil {
		os.RemoveAll(dir)
		return fail(ResultDigest, fmt.Errorf("staged %s does not verify: %w", r.Version, err))
	}
	rec := s.record(r.Version)
	rec.Installs++
	rec.Last = u.now().UTC()
	out, err := u.Host.Activate(ctx, dir, r)
	if err != nil {
		return fail(ResultFailed, fmt.Errorf("activating %s: %w", r.Version, err))
	}
	os.RemoveAll(dir)
	if !out.Kept {
		rec.Rollbacks++
		rec.Bad = out.Detail
		s.LastCheck = &Check{Time: u.now().UTC(), Result: ResultRolledBack, Detail: fmt.Sprintf("%s rolled back: %s", r.Version, out.Detail)}
		u.say("%s", s.LastCheck.Detail)
		return fmt.Errorf("%s rolled back: %s", r.Version, out.Detail)
	}
	s.Current = r.Version
	s.Available, s.Position, s.WaveOpen = "", 0, false
	s.LastCheck = &Check{Time: u.now().UTC(), Result: ResultInstalled, Detail: fmt.Sprintf("%s installed and kept: %s", r.Version, out.Detail)}
	u.say("%s", s.LastCheck.Detail)
	return nil
}

// fetchChannel fetches and verifies the channel; a fetch failure wraps
// errFetch.
func (u *Updater) fetchChannel(ctx context.Context, now time.Time, last *Seen) (*Channel, *Seen, error) {
	data, sig, err := u.Source.Channel(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: fetching the channel from %s: %w", errFetch, u.Source, err)
	}
	return VerifyChannel(data, sig, u.Ring, now, last)
}

// resultOf names an error's kind for the state's last check.
func resultOf(err error) string {
	for _, k := range []struct {
		err    error
		result string
	}{
		{ErrSignature, ResultSignature}, {ErrExpired, ResultExpired}, {ErrReplayed, ResultReplayed},
		{ErrInvalid, ResultInvalid}, {ErrDigest, ResultDigest}, {ErrSpace, ResultSpace}, {errFetch, ResultFetch},
	} {
		if errors.Is(err, k.err) {
			return k.result
		}
	}
	return ResultFailed
}

// Hold stops (on) or resumes installs on this host.
func (u *Updater) Hold(ctx context.Context, on bool) error {
	return u.locked(ctx, func(s *State) error {
		s.Hold = on
		return nil
	})
}

// Pin makes this host install exactly version v when the channel offers
// it, whatever its waves say; "" removes the pin.
func (u *Updater) Pin(ctx context.Context, v string) error {
	if v != "" {
		if err := layer.CheckVersion(v); err != nil {
			return err
		}
	}
	return u.locked(ctx, func(s *State) error {
		s.Pin = v
		return nil
	})
}
