package slot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Defaults of a host.
const (
	DefaultDir     = "/var/lib/aegisbpf"
	DefaultKeysDir = "/usr/lib/aegisbpf/keys"
	DefaultTries   = 1
	slotsSubdir    = "slots"
	lockFile       = "state.lock"
)

// ErrRefused marks a request refused because of the state or the layer;
// nothing was changed.
var ErrRefused = errors.New("refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// System is what the manager does to the host beyond its own files.
type System interface {
	// BootID is the kernel's boot id.
	BootID() (string, error)
	// Verify checks a layer completely (signature, hashes, hash tree).
	Verify(ctx context.Context, manifestPath string, ring keys.Ring) (*layer.Layer, error)
	// Activate makes the verified layer of slot the merged system
	// extension: dm-verity, a read-only mount, the /run/extensions link,
	// systemd-sysext refresh and a manager reload. It also lowers or
	// raises the agent's policy serial floor to the layer's policy.
	Activate(ctx context.Context, slot string, l *layer.Layer) error
	// Agent asks systemd to act on the agent: AgentRestart waits for the
	// restart, AgentStart only queues a start (boot), AgentRecover resets
	// a failed agent and queues a start.
	Agent(ctx context.Context, a AgentAction) error
	// StartProbation queues the probation unit.
	StartProbation(ctx context.Context) error
	// StartRollback starts the rollback unit and waits for it.
	StartRollback(ctx context.Context) error
	// AgentHealth reads the agent unit's state for probation.
	AgentHealth(ctx context.Context) (Health, error)
}

// AgentAction is what System.Agent does.
type AgentAction int

// Agent actions.
const (
	AgentRestart AgentAction = iota
	AgentStart
	AgentRecover
)

// Health is the agent unit's state as systemd reports it.
type Health struct {
	Active    bool   // ActiveState=active, SubState=running
	State     string // "active/running", for messages
	Restarts  uint64 // NRestarts
	ActiveAt  uint64 // ActiveEnterTimestampMonotonic, µs
	Watchdog  uint64 // WatchdogTimestampMonotonic, µs: the last ping
	WatchdogS uint64 // WatchdogUSec, µs; 0 when the unit has no watchdog
	Now       uint64 // CLOCK_MONOTONIC when read, µs
}

// Manager runs the slot verbs.
type Manager struct {
	Dir     string // DefaultDir: state.json, state.lock, slots/
	KeysDir string // the base OS's trusted keys
	Sys     System
	Out     io.Writer // what happened, for people and the journal
	Now     func() time.Time
	// LockWait bounds how long a verb waits for another's lock.
	LockWait time.Duration
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) say(format string, args ...any) {
	if m.Out != nil {
		fmt.Fprintf(m.Out, format+"\n", args...)
	}
}

func (m *Manager) slotDir(name string) string { return filepath.Join(m.Dir, slotsSubdir, name) }

// locked runs fn with the state lock held and the state loaded; fn's
// state is saved when fn returns true.
func (m *Manager) locked(ctx context.Context, fn func(s *State) (save bool, err error)) error {
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", m.Dir, err)
	}
	unlock, err := atomicfile.Lock(ctx, filepath.Join(m.Dir, lockFile), m.LockWait, "slot command")
	if err != nil {
		return err
	}
	defer unlock()
	s, err := loadState(m.Dir)
	if err != nil {
		return err
	}
	save, err := fn(s)
	if save {
		if serr := saveState(m.Dir, s); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}

func (m *Manager) ring() (keys.Ring, error) {
	dir := m.KeysDir
	if dir == "" {
		dir = DefaultKeysDir
	}
	r, err := keys.LoadRing(dir)
	if err != nil {
		return nil, fmt.Errorf("loading the base OS's trusted keys: %w", err)
	}
	return r, nil
}

// Status returns the state as it is on disk.
func (m *Manager) Status(ctx context.Context) (*State, error) {
	var out *State
	err := m.locked(ctx, func(s *State) (bool, error) {
		out = s
		return false, nil
	})
	return out, err
}

// manifestOf finds the manifest of the layer at src: a manifest file, or
// a directory holding exactly one layer.
func manifestOf(src string) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("reading layer: %w", err)
	}
	if fi.IsDir() {
		return layer.FindManifest(src)
	}
	return src, nil
}

func slotInfo(l *layer.Layer, now time.Time) (*Slot, error) {
	data, err := os.ReadFile(l.ManifestPath)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &Slot{
		Version:        l.Manifest.Version,
		Serial:         l.Manifest.Serial,
		ManifestSHA256: hex.EncodeToString(sum[:]),
		RootHash:       l.Manifest.Verity.RootHash,
		KeyID:          l.KeyID,
		Installed:      now.UTC(),
	}, nil
}

// idleSlot is the slot install writes to: neither good nor active.
func idleSlot(s *State) (string, error) {
	if s.OnProbation() {
		return "", refuse("slot %s is on probation; wait for it to be marked good or run 'aegisbpf slot rollback' first", s.Label(s.Pending))
	}
	for _, n := range Names {
		if n != s.Good && n != s.Active {
			return n, nil
		}
	}
	return "", refuse("no idle slot: slot %s is good and slot %s is active", s.Good, s.Active)
}

// Install verifies the layer at src against the base OS's keys, refuses
// a serial below the floor, and copies it into the idle slot. The slot is
// recorded only once every file is copied and synced; a power cut before
// leaves the slot empty and the rest of the state as it was.
func (m *Manager) Install(ctx context.Context, src string) error {
	ring, err := m.ring()
	if err != nil {
		return err
	}
	mpath, err := manifestOf(src)
	if err != nil {
		return err
	}
	l, err := m.Sys.Verify(ctx, mpath, ring)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	info, err := slotInfo(l, m.now())
	if err != nil {
		return err
	}
	return m.locked(ctx, func(s *State) (bool, error) {
		if info.Serial < s.SerialFloor {
			return false, refuse("layer %s has serial %d, below serial %d of the last good layer (anti-rollback)",
				info.Version, info.Serial, s.SerialFloor)
		}
		idle, err := idleSlot(s)
		if err != nil {
			return false, err
		}
		// Forget what the idle slot held before touching its files.
		if s.Slots[idle] != nil || s.Pending == idle || s.PreviousGood == idle {
			if s.Pending == idle {
				m.say("cancelling the switch to %s", s.Label(idle))
				s.Pending, s.Tries = "", 0
			}
			if s.PreviousGood == idle {
				s.PreviousGood = ""
			}
			s.record(m.now(), "erase", idle, "for "+info.Version)
			delete(s.Slots, idle)
			if err := saveState(m.Dir, s); err != nil {
				return false, err
			}
		}
		if err := copyLayer(l, m.slotDir(idle)); err != nil {
			return false, err
		}
		// Check the copy before recording it.
		copied, err := layer.VerifyHashes(filepath.Join(m.slotDir(idle), filepath.Base(l.ManifestPath)), ring)
		if err != nil {
			return false, fmt.Errorf("the copy in slot %s does not verify: %w", idle, err)
		}
		if copied.Manifest.Verity.RootHash != info.RootHash {
			return false, fmt.Errorf("the copy in slot %s has another root hash", idle)
		}
		s.Slots[idle] = info
		s.record(m.now(), "install", idle, fmt.Sprintf("%s serial %d, key %s", info.Version, info.Serial, info.KeyID))
		m.say("installed %s into slot %s; 'aegisbpf slot switch' makes it pending", info.Version, idle)
		return true, nil
	})
}

// copyLayer copies the layer's four files into dst through a temporary
// directory beside it: each file synced, the directory renamed into
// place, the parent synced.
func copyLayer(l *layer.Layer, dst string) error {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	// Leftovers of an install cut short (power loss) go first.
	stale, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(dst)+".new-*"))
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing the leftovers of an earlier install: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".new-")
	if err != nil {
		return fmt.Errorf("installing layer: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for _, src := range []string{l.ManifestPath, l.SignaturePath, l.ErofsPath, l.VerityPath} {
		if err := copyFile(src, filepath.Join(tmp, filepath.Base(src))); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	old := ""
	if _, err := os.Lstat(dst); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dst, old); err != nil {
			return fmt.Errorf("moving the old slot aside: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("installing layer into %s: %w", dst, err)
	}
	if err := atomicfile.SyncDir(parent); err != nil {
		return err
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying layer: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("copying layer: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("syncing %s: %w", dst, err)
	}
	return out.Close()
}

// Switch makes the installed, not-good slot pending with tries
// activations.
func (m *Manager) Switch(ctx context.Context, tries int) error {
	if tries < 1 || tries > MaxTries {
		return refuse("tries must be 1 to %d, not %d", MaxTries, tries)
	}
	ring, err := m.ring()
	if err != nil {
		return err
	}
	return m.locked(ctx, func(s *State) (bool, error) {
		if s.OnProbation() {
			return false, refuse("slot %s is already active on probation", s.Label(s.Pending))
		}
		target := ""
		for _, n := range Names {
			if n != s.Good && s.Slots[n] != nil {
				target = n
			}
		}
		if target == "" {
			return false, refuse("no installed slot besides the good slot %s: install a layer first", s.Good)
		}
		sl := s.Slots[target]
		if sl.Bad != "" {
			return false, refuse("slot %s was rolled back (%s); install a layer over it", s.Label(target), sl.Bad)
		}
		if sl.Serial < s.SerialFloor {
			return false, refuse("slot %s is below serial %d of the last good layer (anti-rollback); use 'aegisbpf slot rollback' to go back", s.Label(target), s.SerialFloor)
		}
		if _, err := m.verifySlot(target, sl, ring); err != nil {
			return false, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		s.Pending, s.Tries = target, tries
		s.record(m.now(), "switch", target, fmt.Sprintf("%d tries", tries))
		m.say("slot %s is pending with %d %s; 'aegisbpf slot activate' (or a reboot) runs it", s.Label(target), tries, plural(tries, "try", "tries"))
		return true, nil
	})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// verifySlot checks the signature and hashes of a slot's copy and that it
// is still the layer the state recorded.
func (m *Manager) verifySlot(name string, sl *Slot, ring keys.Ring) (*layer.Layer, error) {
	mpath := filepath.Join(m.slotDir(name), layer.ManifestName(sl.Version))
	l, err := layer.VerifyHashes(mpath, ring)
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", name, err)
	}
	got, err := slotInfo(l, sl.Installed)
	if err != nil {
		return nil, err
	}
	if got.ManifestSHA256 != sl.ManifestSHA256 || got.RootHash != sl.RootHash {
		return nil, fmt.Errorf("slot %s: %w: its manifest is not the one installed (sha256 %s, recorded %s)", name, layer.ErrCorrupt, got.ManifestSHA256, sl.ManifestSHA256)
	}
	return l, nil
}

// ActivateOptions say how Activate runs.
type ActivateOptions struct {
	// Boot: run by the activation unit early in boot. A pending slot
	// with no tries left is rolled back, and the agent start is queued
	// rather than waited for.
	Boot bool
}

// Activate chooses the slot to run and makes it the merged extension:
// the pending slot while it has tries (each activation uses one), else
// the good slot. A pending slot that fails verification or activation is
// marked bad and the good slot is activated instead. The agent is
// (re)started; a pending slot gets the probation unit.
func (m *Manager) Activate(ctx context.Context, opts ActivateOptions) error {
	ring, err := m.ring()
	if err != nil {
		return err
	}
	boot, err := m.Sys.BootID()
	if err != nil {
		return err
	}
	var activated string
	var probation bool
	err = m.locked(ctx, func(s *State) (bool, error) {
		if len(s.Slots) == 0 {
			m.say("no slot is installed: nothing to activate")
			return false, nil
		}
		if s.Pending != "" && s.Tries == 0 && (opts.Boot || s.Active != s.Pending) {
			m.markBad(s, s.Pending, "not marked good within its tries")
		}
		if !opts.Boot && s.Active != "" && s.ActiveBoot == boot {
			want := s.Good
			if s.Pending != "" {
				want = s.Pending
			}
			if want == s.Active {
				m.say("slot %s is already active", s.Label(s.Active))
				return true, nil
			}
		}
		for {
			target := s.Good
			if s.Pending != "" {
				target = s.Pending
			}
			if target == "" {
				return true, refuse("no good or pending slot to activate")
			}
			if target == s.Pending {
				s.Tries--
			}
			prevActive, prevBoot := s.Active, s.ActiveBoot
			s.Active, s.ActiveBoot = target, boot
			s.record(m.now(), "activate", target, s.Slots[target].Version)
			// Durable before the layer is touched: a power cut during
			// activation has used the try.
			if err := saveState(m.Dir, s); err != nil {
				return false, err
			}
			err := m.activate(ctx, target, s.Slots[target], ring)
			if err == nil {
				activated, probation = target, target == s.Pending
				return true, nil
			}
			if target != s.Pending {
				s.Active, s.ActiveBoot = prevActive, prevBoot
				return true, fmt.Errorf("activating the good slot %s: %w", s.Label(target), err)
			}
			m.say("activating pending slot %s failed: %v", s.Label(target), err)
			m.markBad(s, target, "activation failed: "+err.Error())
		}
	})
	if err != nil || activated == "" {
		return err
	}
	if opts.Boot {
		err = m.Sys.Agent(ctx, AgentStart)
	} else {
		err = m.Sys.Agent(ctx, AgentRestart)
	}
	if probation {
		if perr := m.Sys.StartProbation(ctx); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	return err
}

func (m *Manager) activate(ctx context.Context, name string, sl *Slot, ring keys.Ring) error {
	t0 := time.Now()
	l, err := m.verifySlot(name, sl, ring)
	if err != nil {
		return err
	}
	verified := time.Since(t0)
	if err := m.Sys.Activate(ctx, name, l); err != nil {
		return err
	}
	m.say("activated slot %s (%s, serial %d) in %s; verifying it took %s", name, sl.Version, sl.Serial,
		time.Since(t0).Round(time.Millisecond), verified.Round(time.Millisecond))
	return nil
}

// markBad rolls the pending slot back: it is never activated again.
func (m *Manager) markBad(s *State, name, why string) {
	m.say("rolling back slot %s: %s", s.Label(name), why)
	s.Slots[name].Bad = why
	s.record(m.now(), "rollback", name, why)
	if s.Pending == name {
		s.Pending, s.Tries = "", 0
	}
}

// MarkGood marks the active pending slot good: it becomes the slot
// activated from now on and its serial the anti-rollback floor.
func (m *Manager) MarkGood(ctx context.Context) error {
	return m.locked(ctx, func(s *State) (bool, error) {
		return m.markGood(s)
	})
}

func (m *Manager) markGood(s *State) (bool, error) {
	if !s.OnProbation() {
		if s.Active != "" && s.Active == s.Good {
			m.say("slot %s is already good", s.Label(s.Good))
			return false, nil
		}
		return false, refuse("no pending slot is active (pending %q, active %q)", s.Pending, s.Active)
	}
	name := s.Pending
	sl := s.Slots[name]
	if s.Good != "" {
		s.PreviousGood = s.Good
	}
	s.Good, s.Pending, s.Tries = name, "", 0
	sl.MarkedGood = m.now().UTC()
	s.SerialFloor = max(s.SerialFloor, sl.Serial)
	s.record(m.now(), "mark-good", name, sl.Version)
	m.say("slot %s is good", s.Label(name))
	return true, nil
}

// RollbackOptions say why and how Rollback runs.
type RollbackOptions struct {
	// Reason is recorded in the state and said.
	Reason string
	// Auto: run by the failure path (the rollback unit). It rolls back a
	// slot on probation, and activates the good slot when the active one
	// is not good (agent-stopped marked it bad); it never rolls back a
	// good slot.
	Auto bool
	// Agent is what to do with the agent afterwards.
	Agent AgentAction
	// NoAgent leaves the agent alone.
	NoAgent bool
}

// Rollback goes back to the last good slot: the pending slot on
// probation (or merely switched to) is marked bad. Without Auto and with
// nothing pending, the good slot itself is rolled back to the previous
// good slot, the one explicit way below the anti-rollback floor.
//
// The slot rolled back is marked bad durably before anything is
// activated; the state names the good slot active only once it is
// merged, so a failed activation never leaves the state claiming it.
func (m *Manager) Rollback(ctx context.Context, o RollbackOptions) error {
	ring, err := m.ring()
	if err != nil {
		return err
	}
	boot, err := m.Sys.BootID()
	if err != nil {
		return err
	}
	if o.Reason == "" {
		o.Reason = "rolled back by the operator"
	}
	activated := false
	err = m.locked(ctx, func(s *State) (bool, error) {
		switch {
		case o.Auto && s.OnProbation():
			m.markBad(s, s.Pending, o.Reason)
		case o.Auto:
			if s.Good == "" || (s.Active == s.Good && s.ActiveBoot == boot) {
				m.say("nothing on probation: slot %s is good and is not rolled back automatically", s.Label(s.Active))
				return false, nil
			}
			m.say("the active slot %s is not the good slot; activating %s", s.Label(s.Active), s.Label(s.Good))
		case s.Pending != "" && s.Active != s.Pending:
			m.markBad(s, s.Pending, o.Reason)
			m.say("the switch is cancelled; slot %s stays active", s.Label(s.Active))
			return true, nil
		case s.OnProbation():
			m.markBad(s, s.Pending, o.Reason)
		default:
			prev := s.PreviousGood
			if prev == "" || s.Slots[prev] == nil || s.Slots[prev].Bad != "" {
				return false, refuse("no previous good slot to roll back to")
			}
			bad := s.Good
			s.Slots[bad].Bad = o.Reason
			s.record(m.now(), "rollback", bad, o.Reason)
			s.Good, s.PreviousGood = prev, ""
			s.SerialFloor = s.Slots[prev].Serial
			m.say("rolling back slot %s to the previous good slot %s", s.Label(bad), s.Label(prev))
		}
		target := s.Good
		if target == "" {
			return true, refuse("no good slot to roll back to")
		}
		if err := saveState(m.Dir, s); err != nil {
			return false, err
		}
		if err := m.activate(ctx, target, s.Slots[target], ring); err != nil {
			return true, fmt.Errorf("activating the good slot %s: %w", s.Label(target), err)
		}
		s.Active, s.ActiveBoot = target, boot
		s.record(m.now(), "activate", target, s.Slots[target].Version)
		activated = true
		return true, nil
	})
	if err != nil || !activated || o.NoAgent {
		return err
	}
	return m.Sys.Agent(ctx, o.Agent)
}

// AgentStopped is the agent unit's ExecStopPost. When the agent of a slot
// on probation stopped with a failure (result is systemd's
// $SERVICE_RESULT), the slot is marked bad at once and the rollback unit
// is started and waited for: it activates the good slot outside the
// agent's cgroup (whose device policy forbids device-mapper) and queues
// the agent's start, so the next agent is the good slot's.
func (m *Manager) AgentStopped(ctx context.Context, result, code, status string) error {
	if result == "" || result == "success" {
		return nil
	}
	why := fmt.Sprintf("agent failed on probation (result %s", result)
	if code != "" {
		why += ", " + code + " " + status
	}
	why += ")"
	rollback := false
	err := m.locked(ctx, func(s *State) (bool, error) {
		if !s.OnProbation() {
			m.say("agent stopped (result %s); slot %s is good, systemd restarts it", result, s.Label(s.Active))
			return false, nil
		}
		m.markBad(s, s.Pending, why)
		rollback = true
		return true, nil
	})
	if err != nil || !rollback {
		return err
	}
	return m.Sys.StartRollback(ctx)
}

// Probation waits until the agent of the slot on probation has been
// active, without a restart and feeding its watchdog, for d, and marks the
// slot good. It gives up and rolls back after limit. It returns at once
// when nothing is on probation, and when the slot is rolled back
// meanwhile.
func (m *Manager) Probation(ctx context.Context, d, limit time.Duration, poll time.Duration) error {
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if !st.OnProbation() {
		m.say("nothing on probation")
		return nil
	}
	name, serial := st.Pending, st.Slots[st.Pending].Serial
	label := st.Label(name)
	m.say("slot %s on probation for %s", label, d)
	start := time.Now()
	var since time.Time
	var restarts uint64
	for {
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		if !st.OnProbation() || st.Pending != name || st.Slots[name].Serial != serial {
			m.say("slot %s is no longer on probation", label)
			return nil
		}
		h, err := m.Sys.AgentHealth(ctx)
		if err != nil {
			return err
		}
		switch {
		case !h.Active:
			since = time.Time{}
		case since.IsZero() || h.Restarts != restarts:
			since, restarts = time.Now(), h.Restarts
		}
		fed := h.WatchdogS == 0 || (h.Watchdog > h.ActiveAt && h.Now-h.Watchdog <= h.WatchdogS)
		if !since.IsZero() && time.Since(since) >= d && fed {
			done := false
			err := m.locked(ctx, func(s *State) (bool, error) {
				if !s.OnProbation() || s.Pending != name || s.Slots[name].Serial != serial {
					return false, nil
				}
				done = true
				return m.markGood(s)
			})
			if err != nil || done {
				return err
			}
			continue
		}
		if time.Since(start) > limit {
			return m.Rollback(ctx, RollbackOptions{
				Reason: fmt.Sprintf("agent not healthy for %s within %s (last state %s)", d, limit, h.State),
				Auto:   true, Agent: AgentRestart,
			})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Describe formats the state for people.
func Describe(s *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %-16s %-7s %s\n", "SLOT", "VERSION", "SERIAL", "STATE")
	for _, n := range Names {
		sl := s.Slots[n]
		if sl == nil {
			fmt.Fprintf(&b, "%-5s %-16s %-7s %s\n", n, "-", "-", "empty")
			continue
		}
		var tags []string
		if n == s.Active {
			tags = append(tags, "active")
		}
		if n == s.Good {
			tags = append(tags, "good")
		}
		if n == s.Pending {
			tags = append(tags, fmt.Sprintf("pending (%d %s left)", s.Tries, plural(s.Tries, "try", "tries")))
			if s.Active == n {
				tags = append(tags, "on probation")
			}
		}
		if n == s.PreviousGood {
			tags = append(tags, "previous good")
		}
		if sl.Bad != "" {
			tags = append(tags, "bad: "+sl.Bad)
		}
		if len(tags) == 0 {
			tags = append(tags, "installed")
		}
		fmt.Fprintf(&b, "%-5s %-16s %-7d %s\n", n, sl.Version, sl.Serial, strings.Join(tags, ", "))
	}
	fmt.Fprintf(&b, "anti-rollback floor: serial %d\n", s.SerialFloor)
	if len(s.History) > 0 {
		b.WriteString("history:\n")
		from := max(0, len(s.History)-10)
		for _, e := range s.History[from:] {
			fmt.Fprintf(&b, "  %s  %-9s %-2s %s\n", e.Time.Format(time.RFC3339), e.Action, e.Slot, e.Detail)
		}
	}
	return b.String()
}

// Seed installs the layer at src into slot a of a host with nothing
// installed and marks it good without running it: how an image builder
// preinstalls the first layer (the first boot activates it).
func (m *Manager) Seed(ctx context.Context, src string) error {
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if len(st.Slots) != 0 {
		return refuse("--as-good is for a host with nothing installed; this one has slots %s", strings.Join(installed(st), ", "))
	}
	if err := m.Install(ctx, src); err != nil {
		return err
	}
	return m.locked(ctx, func(s *State) (bool, error) {
		sl := s.Slots["a"]
		if sl == nil || len(s.Slots) != 1 {
			return false, refuse("another slot command changed the state meanwhile")
		}
		s.Good, sl.MarkedGood = "a", m.now().UTC()
		s.SerialFloor = max(s.SerialFloor, sl.Serial)
		s.record(m.now(), "mark-good", "a", sl.Version+" (preinstalled)")
		m.say("slot %s is good (preinstalled)", s.Label("a"))
		return true, nil
	})
}

func installed(s *State) []string {
	var out []string
	for _, n := range Names {
		if s.Slots[n] != nil {
			out = append(out, s.Label(n))
		}
	}
	return out
}
