package daemon

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

// source is the metrics.Source of a running daemon: the agent's own state
// plus the engine's kernel counters once enforcing.
type source struct {
	eng    KernelStats
	starts uint64
	log    *slog.Logger
	slots  func() (*metrics.Slots, error)
	update func() (*metrics.Update, error)

	started  atomic.Bool
	pipeline atomic.Pointer[events.Pipeline]
	watchdog atomic.Pointer[watchdog]

	mu        sync.Mutex
	ttEnforce time.Duration
	cpu       time.Duration
	readErr   string // the last kernel read error, logged when it changes
	slotErr   string // the same for the slot state
	updateErr string // and the updater's
}

func (s *source) enforcing(tt, cpu time.Duration) {
	s.mu.Lock()
	s.ttEnforce, s.cpu = tt, cpu
	s.mu.Unlock()
	s.started.Store(true)
}

// Snapshot implements metrics.Source.
func (s *source) Snapshot() metrics.Snapshot {
	var snap metrics.Snapshot
	a := &snap.Agent
	a.Starts = s.starts
	s.mu.Lock()
	a.TimeToEnforcement, a.EnforcementCPU = s.ttEnforce, s.cpu
	s.mu.Unlock()
	started := s.started.Load()
	enforcerOK := true
	if w := s.watchdog.Load(); w != nil {
		a.Watchdog, a.Checks, enforcerOK = w.metrics()
	}
	a.Enforcing = started && enforcerOK
	if p := s.pipeline.Load(); p != nil {
		st := p.Stats()
		a.Events = &st
	}
	if started {
		snap.Kernel, snap.KernelErr = s.eng.KernelStats()
		if snap.KernelErr != nil {
			snap.Kernel = nil
		}
		s.noteReadErr(snap.KernelErr)
	}
	if s.slots != nil {
		snap.Slots, snap.SlotsErr = s.slots()
		if snap.SlotsErr != nil {
			snap.Slots = nil
		}
		s.noteChange(&s.slotErr, "reading the slot state for metrics", snap.SlotsErr)
	}
	if s.update != nil {
		snap.Update, snap.UpdateErr = s.update()
		if snap.UpdateErr != nil {
			snap.Update = nil
		}
		s.noteChange(&s.updateErr, "reading the update state for metrics", snap.UpdateErr)
	}
	return snap
}

// noteReadErr logs a kernel read error when it first appears or changes,
// not at every scrape.
func (s *source) noteReadErr(err error) {
	s.noteChange(&s.readErr, "reading kernel counters for metrics", err)
}

// noteChange logs an error when it first appears or changes, and when
// it goes away; last (guarded by mu) remembers the previous one.
func (s *source) noteChange(last *string, what string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	changed := msg != *last
	*last = msg
	s.mu.Unlock()
	switch {
	case changed && err != nil:
		s.log.Warn(what, "err", err)
	case changed:
		s.log.Info(what + " works again")
	}
}
