package slot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
)

// StateFormat is the state file format this package reads and writes.
const StateFormat = 1

// StateFile is the state's name inside the slots directory's parent
// (DefaultDir).
const StateFile = "state.json"

// maxStateSize bounds what Load reads; a real state is a few KiB.
const maxStateSize = 1 << 20

// maxHistory bounds the transitions kept in the state, oldest dropped.
const maxHistory = 64

// MaxTries bounds Switch's tries.
const MaxTries = 10

// Names of the two slots.
var Names = []string{"a", "b"}

// State is what state.json holds: the two slots and which is good,
// pending and active. Every field is validated on load.
type State struct {
	Format int `json:"format"`
	// Slots maps "a" and "b" to what is installed there; a missing key is
	// an empty slot.
	Slots map[string]*Slot `json:"slots"`
	// Good is the slot marked good last: the one activated when nothing
	// is pending or the pending one fails. "" only before the first
	// mark-good.
	Good string `json:"good,omitempty"`
	// PreviousGood was Good before the last mark-good: the target of an
	// explicit rollback of a good slot.
	PreviousGood string `json:"previous_good,omitempty"`
	// Pending is the slot switched to and not yet marked good.
	Pending string `json:"pending,omitempty"`
	// Tries is how many more activations Pending gets. At boot a pending
	// slot with no tries left is rolled back.
	Tries int `json:"tries,omitempty"`
	// Active is the slot activated last, and ActiveBoot the kernel boot
	// id of that activation.
	Active     string `json:"active,omitempty"`
	ActiveBoot string `json:"active_boot,omitempty"`
	// SerialFloor is the highest serial ever marked good: install refuses
	// a lower one (anti-rollback). Only an explicit rollback lowers it.
	SerialFloor uint64 `json:"serial_floor"`
	// History lists the last transitions, oldest first.
	History []Event `json:"history"`
}

// Slot is one installed layer.
type Slot struct {
	Version        string    `json:"version"`
	Serial         uint64    `json:"serial"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	RootHash       string    `json:"root_hash"`
	KeyID          string    `json:"key_id"`
	Installed      time.Time `json:"installed"`
	// MarkedGood is when the slot passed probation; zero if never.
	MarkedGood time.Time `json:"marked_good,omitzero"`
	// Bad says why the slot was rolled back; a bad slot is never
	// activated again (install a layer over it).
	Bad string `json:"bad,omitempty"`
}

// Event is one transition in the history.
type Event struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	Slot   string    `json:"slot,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Label names a slot and its layer for messages: `b (2.0.0, serial 2)`.
func (s *State) Label(name string) string {
	sl := s.Slots[name]
	if sl == nil {
		return name + " (empty)"
	}
	return fmt.Sprintf("%s (%s, serial %d)", name, sl.Version, sl.Serial)
}

// OnProbation reports whether the active slot is the pending one.
func (s *State) OnProbation() bool {
	return s.Pending != "" && s.Active == s.Pending
}

func (s *State) record(now time.Time, action, slot, detail string) {
	s.History = append(s.History, Event{Time: now.UTC(), Action: action, Slot: slot, Detail: detail})
	if n := len(s.History) - maxHistory; n > 0 {
		s.History = append([]Event(nil), s.History[n:]...)
	}
}

// NewState is the state of a host with nothing installed.
func NewState() *State {
	return &State{Format: StateFormat, Slots: map[string]*Slot{}, History: []Event{}}
}

var (
	hex64RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	keyIDRE   = regexp.MustCompile(`^[0-9a-f]{16,64}$`)
	versionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

func validName(n string) bool { return n == "a" || n == "b" }

// Validate checks the state's invariants and names the first field that
// breaks one.
func (s *State) Validate() error {
	if s.Format != StateFormat {
		return fmt.Errorf("format is %d, this agent reads format %d", s.Format, StateFormat)
	}
	for name, sl := range s.Slots {
		if !validName(name) {
			return fmt.Errorf("slots: unknown slot %q (slots are \"a\" and \"b\")", name)
		}
		if sl == nil {
			return fmt.Errorf("slots.%s: null (leave an empty slot out)", name)
		}
		if err := sl.validate(); err != nil {
			return fmt.Errorf("slots.%s: %w", name, err)
		}
	}
	refs := []struct {
		field, name string
	}{{"good", s.Good}, {"previous_good", s.PreviousGood}, {"pending", s.Pending}, {"active", s.Active}}
	for _, r := range refs {
		if r.name == "" {
			continue
		}
		if !validName(r.name) {
			return fmt.Errorf("%s: unknown slot %q", r.field, r.name)
		}
		if s.Slots[r.name] == nil {
			return fmt.Errorf("%s: slot %s is empty", r.field, r.name)
		}
	}
	if s.Good != "" && s.Slots[s.Good].Bad != "" {
		return fmt.Errorf("good: slot %s is marked bad", s.Good)
	}
	if s.Pending != "" {
		if s.Pending == s.Good {
			return fmt.Errorf("pending: slot %s is also the good slot", s.Pending)
		}
		if s.Slots[s.Pending].Bad != "" {
			return fmt.Errorf("pending: slot %s is marked bad", s.Pending)
		}
	}
	if s.PreviousGood != "" && s.PreviousGood == s.Good {
		return fmt.Errorf("previous_good: slot %s is also the good slot", s.Good)
	}
	if s.Tries < 0 || s.Tries > MaxTries {
		return fmt.Errorf("tries: %d is outside 0..%d", s.Tries, MaxTries)
	}
	if s.Pending == "" && s.Tries != 0 {
		return fmt.Errorf("tries: %d with no pending slot", s.Tries)
	}
	if (s.Active == "") != (s.ActiveBoot == "") {
		return errors.New("active and active_boot must be set together")
	}
	if len(s.History) > maxHistory {
		return fmt.Errorf("history: %d entries, at most %d", len(s.History), maxHistory)
	}
	return nil
}

func (sl *Slot) validate() error {
	switch {
	case !versionRE.MatchString(sl.Version):
		return fmt.Errorf("version: %q is not a layer version", sl.Version)
	case sl.Serial == 0:
		return errors.New("serial: 0 (serials start at 1)")
	case !hex64RE.MatchString(sl.ManifestSHA256):
		return fmt.Errorf("manifest_sha256: %q is not 64 lower-case hex digits", sl.ManifestSHA256)
	case !hex64RE.MatchString(sl.RootHash):
		return fmt.Errorf("root_hash: %q is not 64 lower-case hex digits", sl.RootHash)
	case !keyIDRE.MatchString(sl.KeyID):
		return fmt.Errorf("key_id: %q is not a key id", sl.KeyID)
	case sl.Installed.IsZero():
		return errors.New("installed: missing")
	}
	return nil
}

// ParseState decodes and validates a state file's bytes strictly: unknown
// fields, a second JSON value and broken invariants are errors, with the
// line and column of a syntax error.
func ParseState(data []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, jsonError(data, dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		line, col := position(data, dec.InputOffset())
		return nil, fmt.Errorf("line %d column %d: data after the state object", line, col)
	}
	if s.Slots == nil {
		s.Slots = map[string]*Slot{}
	}
	if s.History == nil {
		s.History = []Event{}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func jsonError(data []byte, offset int64, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		offset = max(se.Offset-1, 0) // Offset is just past the bad byte
	case errors.As(err, &te):
		offset = te.Offset
	case errors.Is(err, io.EOF):
		return errors.New("empty file")
	}
	line, col := position(data, offset)
	return fmt.Errorf("line %d column %d: %w", line, col, err)
}

func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// loadState reads dir/state.json. A missing file is an empty state; any
// other problem is an error naming the file.
func loadState(dir string) (*State, error) {
	p := filepath.Join(dir, StateFile)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return NewState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading slot state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading slot state %s: %w", p, err)
	}
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("slot state %s: larger than %d bytes", p, maxStateSize)
	}
	s, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("slot state %s: %w (fix or restore it; no slot command changes anything while it is unreadable)", p, err)
	}
	return s, nil
}

// saveState writes the state durably: a temporary file in the same
// directory, fsynced, renamed over state.json, and the directory fsynced,
// so a power cut leaves either the old or the new state.
func saveState(dir string, s *State) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("refusing to write an invalid slot state: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, StateFile), append(data, '\n'), 0o644)
}
