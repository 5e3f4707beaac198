package update

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/metrics"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/image/layer"
)

// Files of the update directory (DefaultDir).
const (
	DefaultDir = "/var/lib/aegisbpf/update"
	stateFile  = "state.json"
	lockFile   = "update.lock"
	stagingDir = "staging"
	// StateFormat is the state format this package writes and reads.
	StateFormat = 1
)

// State is what the updater remembers (DefaultDir/state.json). The agent
// reads it at each scrape for its aegisbpf_update_* metrics.
type State struct {
	Format int `json:"format"`
	// Channel is the last channel edition accepted: a lower serial is
	// refused from then on.
	Channel *Seen `json:"channel,omitempty"`
	// Hold stops installs (update hold); Pin installs exactly this
	// version whatever the waves say (update pin).
	Hold bool   `json:"hold,omitempty"`
	Pin  string `json:"pin,omitempty"`
	// Current is the version the slots run, as of the last check.
	Current string `json:"current,omitempty"`
	// Available is the newest release of the channel above Current that
	// is not halted, with this host's position in its rollout and
	// whether its wave is open.
	Available string  `json:"available,omitempty"`
	Position  float64 `json:"position,omitempty"`
	WaveOpen  bool    `json:"wave_open,omitempty"`
	LastCheck *Check  `json:"last_check,omitempty"`
	// Releases counts, per version, what the updater did with it.
	Releases map[string]*Record `json:"releases,omitempty"`
}

// Check is the outcome of one check or apply.
type Check struct {
	Time time.Time `json:"time"`
	// Result is a short code (ResultOK, ResultInstalled, ...).
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// Results of a check, for people and the aegisbpf_update_last_check_result metric.
const (
	ResultUpToDate   = "up-to-date"  // nothing newer for this host
	ResultWaiting    = "waiting"     // a newer release, this host's wave not open
	ResultAvailable  = "available"   // check only: this host would install
	ResultInstalled  = "installed"   // apply: the release passed probation
	ResultRolledBack = "rolled-back" // apply: the release failed and the host went back
	ResultHeld       = "held"        // update hold
	ResultBusy       = "busy"        // a slot is on probation
	ResultSignature  = "bad-signature"
	ResultExpired    = "expired"
	ResultReplayed   = "replayed"
	ResultInvalid    = "invalid"
	ResultFetch      = "fetch-failed"
	ResultDigest     = "digest-mismatch"
	ResultSpace      = "no-space"
	ResultFailed     = "failed" // install or activation could not run
)

// Record is what happened to one release on this host.
type Record struct {
	Installs  uint64 `json:"installs"`
	Rollbacks uint64 `json:"rollbacks"`
	// Bad says why the release rolled back here: it is not tried again.
	Bad  string    `json:"bad,omitempty"`
	Last time.Time `json:"last"`
}

func (s *State) record(v string) *Record {
	if s.Releases == nil {
		s.Releases = map[string]*Record{}
	}
	r := s.Releases[v]
	if r == nil {
		r = &Record{}
		s.Releases[v] = r
	}
	return r
}

// maxStateSize bounds what ParseState reads.
const maxStateSize = 1 << 20

// ParseState decodes and validates a state file.
func ParseState(data []byte) (*State, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("state is %d bytes, more than the %d allowed", len(data), maxStateSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding: data after the JSON object")
	}
	if s.Format != StateFormat {
		return nil, fmt.Errorf("format %d, this build reads only %d", s.Format, StateFormat)
	}
	for _, v := range []string{s.Pin, s.Current, s.Available} {
		if v != "" {
			if err := layer.CheckVersion(v); err != nil {
				return nil, err
			}
		}
	}
	for v, r := range s.Releases {
		if err := layer.CheckVersion(v); err != nil {
			return nil, fmt.Errorf("releases: %w", err)
		}
		if r == nil {
			return nil, fmt.Errorf("releases: %q is null", v)
		}
	}
	if s.Position < 0 || s.Position >= 1 {
		return nil, fmt.Errorf("position %v is not in [0, 1)", s.Position)
	}
	return &s, nil
}

// LoadState reads dir's state; a missing file is a fresh state.
func LoadState(dir string) (*State, error) {
	p := filepath.Join(dir, stateFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Format: StateFormat}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the update state: %w", err)
	}
	s, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("update state %s: %w", p, err)
	}
	return s, nil
}

func saveState(dir string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the update state: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(data, '\n'), 0o644)
}

// Metrics is the state as the agent's metrics show it.
func (s *State) Metrics() *metrics.Update {
	u := &metrics.Update{Current: s.Current, Available: s.Available, Position: s.Position, WaveOpen: s.WaveOpen,
		Held: s.Hold, Pin: s.Pin}
	if c := s.Channel; c != nil {
		u.ChannelSerial, u.ChannelExpires = c.Serial, c.Expires
	}
	if c := s.LastCheck; c != nil {
		u.LastCheck, u.LastResult = c.Time, c.Result
	}
	for _, v := range slices.Sorted(maps.Keys(s.Releases)) {
		r := s.Releases[v]
		u.Releases = append(u.Releases, metrics.UpdateRelease{Version: v, Installs: r.Installs, Rollbacks: r.Rollbacks})
	}
	return u
}

// MetricsReader reads dir's state for each scrape: nil, nil while the
// updater has never run (no state file).
func MetricsReader(dir string) func() (*metrics.Update, error) {
	return func() (*metrics.Update, error) {
		if _, err := os.Stat(filepath.Join(dir, stateFile)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		s, err := LoadState(dir)
		if err != nil {
			return nil, err
		}
		return s.Metrics(), nil
	}
}
