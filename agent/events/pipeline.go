package events

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultInterval is how long identical events are folded before their
// entry is written.
const DefaultInterval = 5 * time.Second

// DefaultDrainTimeout bounds how long Run waits at shutdown for the reader
// to return the records pending in the ring buffer.
const DefaultDrainTimeout = 2 * time.Second

// Sink receives each interval's aggregated events. Write is called from one
// goroutine; b is valid only during the call.
type Sink interface {
	Name() string
	Write(b *Batch) error
}

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	Reader RecordReader
	Sinks  []Sink
	// Interval between writes to the sinks; DefaultInterval when 0.
	Interval time.Duration
	// MaxKeys bounds the distinct entries per interval; DefaultMaxKeys when 0.
	MaxKeys int
	// Rules returns the rule ids of the applied policy by rule index; nil
	// leaves entries with "#<index>".
	Rules func() []string
	// DrainTimeout: DefaultDrainTimeout when 0.
	DrainTimeout time.Duration
	// Clock is the kernel boot clock; BootClock when nil.
	Clock func() time.Duration
	Log   *slog.Logger
}

// Pipeline reads events (Stream), aggregates them (Aggregator) and writes
// each interval's entries to the sinks. Run drives it; Check and Stats may
// be called from any goroutine.
type Pipeline struct {
	cfg      PipelineConfig
	stream   *Stream
	agg      *Aggregator
	sinkErrs []atomic.Uint64
	batch    Batch // reused by flush; owned by Run
}

// NewPipeline returns a Pipeline; nothing runs until Run.
func NewPipeline(cfg PipelineConfig) *Pipeline {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = BootClock
	}
	if cfg.Rules == nil {
		cfg.Rules = func() []string { return nil }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	agg := NewAggregator(cfg.MaxKeys)
	return &Pipeline{
		cfg:      cfg,
		agg:      agg,
		stream:   NewStream(cfg.Reader, agg, cfg.Clock),
		sinkErrs: make([]atomic.Uint64, len(cfg.Sinks)),
	}
}

// Run reads, aggregates and writes until ctx is done. Then it drains the
// reader (the records pending in the ring buffer are read, within
// DrainTimeout), writes the last interval, and closes the reader. If the
// reader fails meanwhile, Run logs it once and keeps writing what was read:
// Check reports the failure, so the watchdog, not Run, decides. Run
// returns an error only when the reader could not be stopped.
func (p *Pipeline) Run(ctx context.Context) error {
	go p.stream.Run()
	stopped := make(chan error, 1)
	defer context.AfterFunc(ctx, func() { stopped <- p.stop() })()
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	start := time.Now()
	ended := p.stream.Done()
	for {
		select {
		case now := <-tick.C:
			p.flush(start, now)
			start = now
		case <-ended:
			ended = nil
			if ctx.Err() == nil {
				p.cfg.Log.Error("event reader exited; events are no longer read", "err", p.stream.err)
			}
		case err := <-stopped:
			p.flush(start, time.Now())
			if cerr := p.cfg.Reader.Close(); cerr != nil {
				p.cfg.Log.Warn("closing the event reader", "err", cerr)
			}
			return err
		}
	}
}

// stop ends the stream, draining it when the reader can be woken, and
// closing it when it does not end within DrainTimeout.
func (p *Pipeline) stop() error {
	done := p.stream.Done()
	select {
	case <-done:
		return nil // already ended
	default:
	}
	if err := p.stream.Stop(); err != nil {
		p.cfg.Log.Warn("stopping the event reader", "err", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(p.cfg.DrainTimeout):
	}
	p.cfg.Log.Warn("event reader did not drain in time; closing it", "timeout", p.cfg.DrainTimeout)
	if err := p.cfg.Reader.Close(); err != nil {
		p.cfg.Log.Warn("closing the event reader", "err", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(p.cfg.DrainTimeout):
		return errors.New("event reader did not stop after Close")
	}
}

// flush writes the interval [start, end) to the sinks. One log line per
// failing sink per interval at most.
func (p *Pipeline) flush(start, end time.Time) {
	b := &p.batch
	b.Start, b.End = start, end
	b.Rules = p.cfg.Rules()
	b.BootOffset = BootOffset(p.cfg.Clock)
	p.agg.Flush(b, func(b *Batch) {
		for i, s := range p.cfg.Sinks {
			if err := s.Write(b); err != nil {
				p.sinkErrs[i].Add(1)
				p.cfg.Log.Warn("writing events", "sink", s.Name(), "err", err)
			}
		}
	})
	b.Rules = nil
}

// Check reports whether the reader is alive and responsive (Stream.Check).
func (p *Pipeline) Check(now time.Time, bound time.Duration) error {
	return p.stream.Check(now, bound)
}

// SinkStats counts a sink's failed writes (batches).
type SinkStats struct {
	Name   string
	Errors uint64
}

// Stats are a Pipeline's counters.
type Stats struct {
	Reader     ReaderStats
	Aggregator AggregatorStats
	Sinks      []SinkStats
}

// Stats returns the Pipeline's counters. Safe for concurrent use.
func (p *Pipeline) Stats() Stats {
	st := Stats{Reader: p.stream.Stats(), Aggregator: p.agg.Stats()}
	for i, s := range p.cfg.Sinks {
		st.Sinks = append(st.Sinks, SinkStats{Name: s.Name(), Errors: p.sinkErrs[i].Load()})
	}
	return st
}
