package slot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Summary is the slot state as the agent's metrics export it.
type Summary struct {
	// ActiveSerial is the serial of the layer in the active slot, 0 when
	// no slot is active.
	ActiveSerial uint64
	// Floor is the anti-rollback floor.
	Floor uint64
	// Pending: a slot was switched to and not yet marked good.
	Pending bool
	// PendingSince is when the pending slot was switched to; zero when
	// nothing is pending or the switch left the history.
	PendingSince time.Time
	// LastRollback is the time of the newest rollback in the history;
	// zero when there is none.
	LastRollback time.Time
	// Bad counts the slots marked bad.
	Bad int
}

// ReadState reads dir's state file without taking the lock (see
// ReadSummary); ok is false when there is none.
func ReadState(dir string) (s *State, ok bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, StateFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	s, err = loadState(dir)
	return s, true, err
}

// ReadSummary summarizes dir's state file. It takes no lock: the file is
// only ever replaced by a rename, so a read sees one whole state. ok is
// false when there is no state file (a host without slots).
func ReadSummary(dir string) (sum Summary, ok bool, err error) {
	s, ok, err := ReadState(dir)
	if !ok || err != nil {
		return Summary{}, ok, err
	}
	return s.Summary(), true, nil
}

// Summary computes the metrics' view of s.
func (s *State) Summary() Summary {
	var sum Summary
	if sl := s.Slots[s.Active]; sl != nil {
		sum.ActiveSerial = sl.Serial
	}
	sum.Floor = s.SerialFloor
	sum.Pending = s.Pending != ""
	for _, name := range Names {
		if sl := s.Slots[name]; sl != nil && sl.Bad != "" {
			sum.Bad++
		}
	}
	for i := len(s.History) - 1; i >= 0; i-- {
		ev := s.History[i]
		if ev.Action == "rollback" && sum.LastRollback.IsZero() {
			sum.LastRollback = ev.Time
		}
		if sum.Pending && ev.Action == "switch" && ev.Slot == s.Pending && sum.PendingSince.IsZero() {
			sum.PendingSince = ev.Time
		}
	}
	return sum
}
