package update

import (
	"context"
	"fmt"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
)

// SlotHost runs releases in the host's A/B slots (agent/slot): install
// into the idle slot, switch with one try, activate, and wait for the
// probation unit's verdict.
type SlotHost struct {
	Slots *slot.Manager
	// Wait bounds the wait for the verdict (the probation unit's limit,
	// five minutes by default, and some margin).
	Wait time.Duration
	// Poll is how often the slot state is read meanwhile.
	Poll time.Duration
}

// Installed reads the slot state.
func (h SlotHost) Installed(ctx context.Context) (Installed, error) {
	st, err := h.Slots.Status(ctx)
	if err != nil {
		return Installed{}, err
	}
	var in Installed
	if sl := st.Slots[st.Active]; sl != nil {
		in.Version, in.Serial = sl.Version, sl.Serial
	}
	in.Floor = st.SerialFloor
	if st.Pending != "" {
		in.Busy = fmt.Sprintf("slot %s is pending", st.Label(st.Pending))
	}
	for _, n := range slot.Names {
		if sl := st.Slots[n]; sl != nil && sl.Bad != "" {
			in.Bad = append(in.Bad, sl.Version)
		}
	}
	return in, nil
}

// Activate installs, switches and activates the staged release and waits
// until the slot is marked good, or rolled back and the good slot active
// again (the rollback unit re-activates it after the slot is marked bad).
func (h SlotHost) Activate(ctx context.Context, dir string, r *Release) (Outcome, error) {
	m := h.Slots
	if err := m.Install(ctx, dir); err != nil {
		return Outcome{}, err
	}
	if err := m.Switch(ctx, 1); err != nil {
		return Outcome{}, err
	}
	if err := m.Activate(ctx, slot.ActivateOptions{}); err != nil {
		return Outcome{}, err
	}
	wait, poll := h.Wait, h.Poll
	if wait == 0 {
		wait = 6 * time.Minute
	}
	if poll == 0 {
		poll = time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		st, err := m.Status(ctx)
		if err != nil {
			return Outcome{}, err
		}
		for _, n := range slot.Names {
			sl := st.Slots[n]
			if sl == nil || sl.Version != r.Version {
				continue
			}
			if sl.Bad != "" && st.Active != n {
				// Rolled back, and the good slot runs again.
				return Outcome{Detail: sl.Bad}, nil
			}
			if st.Good == n && st.Pending == "" && st.Active == n {
				return Outcome{Kept: true, Detail: fmt.Sprintf("slot %s passed probation", n)}, nil
			}
		}
		if time.Now().After(deadline) {
			return Outcome{}, fmt.Errorf("no verdict on %s within %s: the probation unit decides ('aegisbpf slot status')", r.Version, wait)
		}
		select {
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}
