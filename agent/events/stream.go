package events

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// ErrClosed ends a RecordReader cleanly: Read returns an error wrapping it
// once the reader is closed. It is os.ErrClosed, as cilium's
// ringbuf.ErrClosed is.
var ErrClosed = os.ErrClosed

// ErrWoken is returned by Read of a Waker after Wake, once every record
// that was pending when Wake was called has been returned.
var ErrWoken = errors.New("event reader woken")

// RecordReader yields raw ring buffer records. Read blocks until a record is
// available; the returned slice is valid until the next Read. Close
// unblocks a pending Read, which then returns an error wrapping ErrClosed.
type RecordReader interface {
	Read() ([]byte, error)
	Close() error
}

// Waker is implemented by a RecordReader that can interrupt a blocked Read
// without closing: after Wake, Read returns the records pending at that
// time and then ErrWoken. Streams use it to prove the reading goroutine is
// responsive while no events arrive, and to drain the reader at shutdown.
type Waker interface {
	Wake() error
}

// Backlogger is implemented by a RecordReader that knows how many bytes
// wait to be read (cilium's ringbuf.Reader.AvailableBytes).
type Backlogger interface {
	Backlog() int
}

// Handler consumes decoded events; the Aggregator is one. Add must not
// retain e.
type Handler interface {
	Add(e *bpf.AegisEvent)
}

const (
	stateIdle uint32 = iota // not started
	stateReading
	stateHandling
	stateStopped
)

// Stream reads and decodes records from a RecordReader on one goroutine
// (Run) and hands each event to a Handler, without allocating per event.
// It counts its progress for Check and Stats, which any goroutine may call.
type Stream struct {
	r     RecordReader
	h     Handler
	clock func() time.Duration // kernel boot clock, for the lag sample

	ev bpf.AegisEvent // decode target, owned by Run

	state        atomic.Uint32
	records      atomic.Uint64
	decodeErrors atomic.Uint64
	wakes        atomic.Uint64
	sample       atomic.Bool  // set by Check: stamp the next record
	lastRead     atomic.Int64 // wall clock ns of the last sampled record
	lag          atomic.Int64 // ns from the kernel's timestamp to reading, last sample
	stopping     atomic.Bool
	done         chan struct{}
	err          error // set before done is closed

	check struct {
		sync.Mutex
		progress uint64
		at       time.Time
	}
}

// NewStream returns a Stream reading r into h. clock returns the kernel's
// boot-time clock (CLOCK_BOOTTIME, the clock of bpf_ktime_get_boot_ns);
// nil uses BootClock.
func NewStream(r RecordReader, h Handler, clock func() time.Duration) *Stream {
	if clock == nil {
		clock = BootClock
	}
	s := &Stream{r: r, h: h, clock: clock, done: make(chan struct{})}
	s.sample.Store(true)
	return s
}

// Run reads until the reader ends: nil after Stop or Close (ErrClosed), the
// read error otherwise. It must be called once.
func (s *Stream) Run() error {
	s.check.Lock()
	s.check.at = time.Now()
	s.check.Unlock()
	err := s.loop()
	s.err = err
	s.state.Store(stateStopped)
	close(s.done)
	return err
}

func (s *Stream) loop() error {
	for {
		s.state.Store(stateReading)
		raw, err := s.r.Read()
		s.state.Store(stateHandling)
		if err != nil {
			switch {
			case errors.Is(err, ErrWoken):
				s.wakes.Add(1)
				if s.stopping.Load() {
					return nil // drained: every record pending at Stop was read
				}
				continue
			case errors.Is(err, ErrClosed):
				return nil
			}
			return fmt.Errorf("reading events: %w", err)
		}
		if Decode(raw, &s.ev) != nil {
			s.decodeErrors.Add(1)
			continue
		}
		if s.sample.Load() {
			s.stamp()
		}
		s.h.Add(&s.ev)
		s.records.Add(1)
	}
}

// stamp records when the current event was read and how long after the
// kernel made it. Called for the first event after each Check, not per
// event: the clocks cost more than the rest of the hot path.
func (s *Stream) stamp() {
	s.sample.Store(false)
	s.lastRead.Store(time.Now().UnixNano())
	if lag := s.clock() - time.Duration(s.ev.TimeNs); lag > 0 {
		s.lag.Store(int64(lag))
	} else {
		s.lag.Store(0)
	}
}

// Stop ends Run after the records pending now are read: through Wake when
// the reader is a Waker, else by closing the reader. Done tells when Run
// has returned.
func (s *Stream) Stop() error {
	s.stopping.Store(true)
	if w, ok := s.r.(Waker); ok {
		if err := w.Wake(); err == nil {
			return nil
		}
	}
	return s.r.Close()
}

// Done is closed when Run has returned.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Check reports whether the reading goroutine is alive and responsive. No
// events is normal, so Check does not expect records; it expects progress
// of some kind between calls no further apart than bound:
//
//   - a record read, or a wake-up answered: Check wakes a Waker every call,
//     so an idle but live reader answers by the next call;
//   - for a reader that cannot be woken, being blocked in Read counts as
//     live, and only time spent handling one record counts against bound.
//
// Under a flood the reader may never see the end of the buffer to answer a
// wake-up, but it reads records, which counts. Check returns an error once
// Run has returned (other than after Stop) or after bound without progress.
// Call it from one goroutine at intervals shorter than bound.
func (s *Stream) Check(now time.Time, bound time.Duration) error {
	select {
	case <-s.done:
		if s.stopping.Load() {
			return errors.New("event reader stopped")
		}
		if s.err != nil {
			return fmt.Errorf("event reader exited: %w", s.err)
		}
		return errors.New("event reader exited: the reader was closed")
	default:
	}
	if s.state.Load() == stateIdle {
		return nil // Run not started yet
	}
	s.check.Lock()
	defer s.check.Unlock()
	w, wakeable := s.r.(Waker)
	progress := s.records.Load() + s.wakes.Load() + s.decodeErrors.Load()
	switch {
	case progress != s.check.progress:
		s.check.progress, s.check.at = progress, now
	case !wakeable && s.state.Load() == stateReading:
		s.check.at = now
	case now.Sub(s.check.at) > bound:
		return fmt.Errorf("event reader unresponsive: no record read and no wake-up answered for %s (%d records read)",
			now.Sub(s.check.at).Round(time.Millisecond), s.records.Load())
	}
	s.sample.Store(true)
	if wakeable {
		if err := w.Wake(); err != nil {
			return fmt.Errorf("waking the event reader: %w", err)
		}
	}
	return nil
}

// ReaderStats are a Stream's counters.
type ReaderStats struct {
	Running      bool
	Records      uint64 // records read and decoded
	DecodeErrors uint64 // records too short to decode
	Wakes        uint64 // wake-ups answered
	// LastRead is when a sampled record was read (sampled once per Check
	// interval); zero before the first.
	LastRead time.Time
	// Lag is how long after the kernel's timestamp the last sampled record
	// was read.
	Lag time.Duration
	// Backlog is how many bytes wait in the ring buffer, -1 when the
	// reader cannot tell.
	Backlog int
}

// Stats returns the Stream's counters. Safe for concurrent use.
func (s *Stream) Stats() ReaderStats {
	st := ReaderStats{
		Running:      s.state.Load() == stateReading || s.state.Load() == stateHandling,
		Records:      s.records.Load(),
		DecodeErrors: s.decodeErrors.Load(),
		Wakes:        s.wakes.Load(),
		Lag:          time.Duration(s.lag.Load()),
		Backlog:      -1,
	}
	if ns := s.lastRead.Load(); ns != 0 {
		st.LastRead = time.Unix(0, ns)
	}
	if b, ok := s.r.(Backlogger); ok && st.Running {
		st.Backlog = b.Backlog()
	}
	return st
}
