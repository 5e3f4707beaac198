package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/agent/update"
)

// StandInActivation is the simulation's update.Host. It stands in for the
// slots (dm-verity, systemd-sysext, the agent, probation), which a
// thousand processes on one machine cannot each have: it keeps what
// "runs" in a small file, records every activation it is asked for in
// Journal, and reports the release kept, or rolled back when its version
// is in Fail (a release whose agent would fail probation).
type StandInActivation struct {
	Dir  string   // where slots.json and activations.jsonl live
	Fail []string // versions whose probation fails
}

// StandInSlots is what the stand-in runs.
type StandInSlots struct {
	Version string   `json:"version"`
	Serial  uint64   `json:"serial"`
	Bad     []string `json:"bad,omitempty"`
}

// Activation is one record of the stand-in's journal.
type Activation struct {
	Time    time.Time `json:"time"`
	Version string    `json:"version"`
	Kept    bool      `json:"kept"`
	// Would lists what the real host would have done.
	Would string `json:"would"`
}

const (
	standInSlots   = "slots.json"
	standInJournal = "activations.jsonl"
)

// Seed writes the stand-in's initial slots: version at serial runs.
func (s StandInActivation) Seed(version string, serial uint64) error {
	return s.save(&StandInSlots{Version: version, Serial: serial})
}

func (s StandInActivation) load() (*StandInSlots, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, standInSlots))
	if err != nil {
		return nil, err
	}
	var st StandInSlots
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("stand-in slots: %w", err)
	}
	return &st, nil
}

func (s StandInActivation) save(st *StandInSlots) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.Dir, standInSlots), data, 0o644)
}

// Installed implements update.Host.
func (s StandInActivation) Installed(context.Context) (update.Installed, error) {
	st, err := s.load()
	if err != nil {
		return update.Installed{}, err
	}
	return update.Installed{Version: st.Version, Serial: st.Serial, Floor: st.Serial, Bad: st.Bad}, nil
}

// Activate implements update.Host: it records what a real host would do
// with the verified, staged release in dir and gives the verdict.
func (s StandInActivation) Activate(_ context.Context, dir string, r *update.Release) (update.Outcome, error) {
	st, err := s.load()
	if err != nil {
		return update.Outcome{}, err
	}
	a := Activation{Time: time.Now().UTC(), Version: r.Version, Kept: !slices.Contains(s.Fail, r.Version),
		Would: fmt.Sprintf("slot install %s; slot switch; slot activate; probation", dir)}
	out := update.Outcome{Kept: a.Kept, Detail: "stand-in: probation passed"}
	if a.Kept {
		st.Version, st.Serial = r.Version, r.Serial
	} else {
		st.Bad = append(st.Bad, r.Version)
		out.Detail = "stand-in: the agent failed probation (simulated); rolled back to " + st.Version
	}
	line, err := json.Marshal(a)
	if err != nil {
		return update.Outcome{}, err
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, standInJournal), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return update.Outcome{}, err
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return update.Outcome{}, err
	}
	return out, s.save(st)
}

// Journal reads the activations the stand-in in dir recorded.
func Journal(dir string) ([]Activation, error) {
	data, err := os.ReadFile(filepath.Join(dir, standInJournal))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Activation
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var a Activation
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, standInJournal), err)
		}
		out = append(out, a)
	}
	return out, nil
}
