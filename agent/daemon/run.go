package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

// Run runs the agent until ctx ends or a SIGTERM/SIGINT arrives, then stops
// gracefully and returns nil: the pinned links keep enforcing. It returns
// an error, on one line, when the agent cannot start enforcing (nothing
// was made READY) or its metrics cannot be served as configured.
func Run(ctx context.Context, cfg Config, eng Engine) error {
	if err := cfg.Validate(); err != nil {
		return oneLine(fmt.Errorf("configuration: %w", err))
	}
	cfg = cfg.withDefaults()
	log := cfg.Log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer handleSignals(cancel, cfg.ForceExit, log)()

	age, err := processAge()
	if err != nil {
		log.Debug("process start time unknown; measuring time to enforcement from Run", "err", err)
	}
	began := time.Now().Add(-age)
	n := &notifier{log: log}
	starts, err := bumpStarts(cfg.StateDir)
	if err != nil {
		log.Warn("counting agent starts", "err", err)
	}
	st := &AgentStatus{PID: os.Getpid(), Starts: starts, Version: cfg.Build.Version}
	setState := func(state, status string) {
		st.State, st.Status, st.Updated = state, statusText(status), time.Now()
		if err := writeStatus(cfg.StateDir, st); err != nil {
			log.Warn("writing the status file", "err", err)
		}
	}
	fail := func(err error) error {
		err = oneLine(err)
		n.status("failed: " + err.Error())
		setState(StateFailed, err.Error())
		return err
	}
	wdTimeout, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return fail(fmt.Errorf("reading the systemd watchdog settings: %w", err))
	}
	log.Info("agent starting", "version", cfg.Build.Version, "pid", os.Getpid(),
		"memory_limit", memoryLimit(), "watchdog", wdTimeout, "start", starts)

	// Metrics come first, so that a scrape during startup already says
	// enforcement_active 0, and a bad --metrics-listen fails fast.
	src := &source{eng: eng, starts: starts, log: log, slots: cfg.Slots, update: cfg.Update}
	ls, err := metricsListeners(cfg)
	if err != nil {
		return fail(err)
	}
	srv := metrics.NewServer(metrics.NewRegistry(src, cfg.Build), log)
	srv.Serve(ls)
	stopMetrics := func() {
		sctx, scancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("stopping the metrics server", "err", err)
		}
	}

	n.status("starting: loading and attaching the BPF programs")
	setState(StateStarting, "loading and attaching the BPF programs")
	if err := eng.Start(ctx); err != nil {
		stopMetrics()
		if ctx.Err() != nil {
			setState(StateStopped, "stopped before enforcement started")
			log.Info("stopped before enforcement started", "err", err)
			return nil
		}
		return fail(fmt.Errorf("starting enforcement: %w", err))
	}
	tt, cpu := time.Since(began), cpuTime()
	src.enforcing(tt, cpu)
	st.TimeToEnforcement = tt.Round(time.Millisecond).String()
	closeEngine := func() {
		if err := eng.Close(); err != nil {
			log.Warn("closing the engine (pinned links stay)", "err", err)
		}
	}

	pipe, err := newPipeline(cfg, eng)
	if err != nil {
		stopMetrics()
		closeEngine()
		return fail(err)
	}
	src.pipeline.Store(pipe)
	pctx, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	pdone := make(chan error, 1)
	go func() { pdone <- pipe.Run(pctx) }()

	status := enforcingStatus(eng)
	if k, err := eng.KernelStats(); err == nil && k != nil {
		st.Policy = &PolicyStatus{Digest: k.Policy.Digest, Serial: k.Policy.Serial, Mode: k.Policy.Mode, Rules: k.Policy.Rules}
	}
	if wdTimeout > 0 {
		st.Watchdog = wdTimeout.String()
	}
	setState(StateEnforcing, status)
	n.status(status, daemon.SdNotifyReady)
	log.Info("enforcing", "status", status, "time_to_enforcement", tt, "cpu", cpu)
	// Parsing and resolving a large policy leaves most of the heap garbage
	// (about 250 MB allocated for 100k rules): collect it and give the pages
	// back now rather than when the scavenger gets to them, so the agent's
	// RSS is its working set from the start.
	debug.FreeOSMemory()

	// The event reader answers a wake-up within microseconds; one and a half
	// rounds without any answer or record means it is dead or stuck.
	bound := max(roundInterval(wdTimeout, cfg.HealthInterval)*3/2, time.Second)
	w := newWatchdog(n, log, wdTimeout, cfg.HealthInterval, []check{
		{checkEnforcer, func(time.Time) error { return eng.Health() }},
		{checkEvents, func(now time.Time) error { return pipe.Check(now, bound) }},
	})
	w.okStatus = func() string { return enforcingStatus(eng) }
	w.onChange = func(healthy bool, status string) {
		if healthy {
			setState(StateEnforcing, status)
		} else {
			setState(StateUnhealthy, status)
		}
	}
	src.watchdog.Store(w)
	w.run(ctx)

	// Graceful stop: say so, stop scrapes, drain the events, let go of the
	// descriptors. The pinned links keep enforcing.
	const stopping = "stopping: pinned links keep enforcing"
	n.status(stopping, daemon.SdNotifyStopping)
	log.Info(stopping)
	stopMetrics()
	pcancel()
	select {
	case err := <-pdone:
		if err != nil {
			log.Warn("stopping the event pipeline", "err", err)
		}
	case <-time.After(2*cfg.StopTimeout + events.DefaultDrainTimeout):
		log.Warn("event pipeline did not stop in time")
	}
	closeEngine()
	setState(StateStopped, "agent stopped; pinned links keep enforcing")
	return nil
}

// newPipeline opens the engine's event reader and the sinks.
func newPipeline(cfg Config, eng Engine) (*events.Pipeline, error) {
	r, err := eng.Events()
	if err != nil {
		return nil, fmt.Errorf("opening the event reader: %w", err)
	}
	var sinks []events.Sink
	if !cfg.NoJournal && events.JournalAvailable() {
		sinks = append(sinks, events.NewJournalSink())
	}
	if cfg.JSON != nil {
		sinks = append(sinks, events.NewJSONSink(cfg.JSON))
	}
	if len(sinks) == 0 {
		cfg.Log.Warn("events have no sink (no journal socket and no JSON output): they are counted only")
	}
	return events.NewPipeline(events.PipelineConfig{
		Reader: r, Sinks: sinks, Interval: cfg.EventInterval, MaxKeys: cfg.EventMaxKeys,
		Rules: eng.Rules, Log: cfg.Log,
	}), nil
}

// metricsListeners returns the socket-activated metrics listeners or,
// without them, the --metrics-listen one.
func metricsListeners(cfg Config) ([]net.Listener, error) {
	ls, others, err := metrics.ActivatedListeners()
	if err != nil {
		return nil, err
	}
	if len(others) > 0 {
		cfg.Log.Warn("ignoring socket-activated descriptors with unexpected names", "names", others)
	}
	if len(ls) > 0 {
		if cfg.MetricsListen != "" {
			cfg.Log.Info("socket-activated: ignoring --metrics-listen", "metrics_listen", cfg.MetricsListen)
		}
		return ls, nil
	}
	if cfg.MetricsListen == "" {
		cfg.Log.Info("metrics not served: not socket-activated and no --metrics-listen")
		return nil, nil
	}
	l, err := metrics.Listen(cfg.MetricsListen)
	if err != nil {
		return nil, err
	}
	return []net.Listener{l}, nil
}

// enforcingStatus is the STATUS line while healthy.
func enforcingStatus(eng KernelStats) string {
	k, err := eng.KernelStats()
	if err != nil || k == nil {
		return "enforcing"
	}
	p := k.Policy
	digest := p.Digest
	if len(digest) > 12 {
		digest = digest[:12]
	}
	return fmt.Sprintf("enforcing: policy serial %d sha256:%s, mode %s, %d rules, %d programs attached",
		p.Serial, digest, p.Mode, p.Rules, len(k.Programs))
}

// memoryLimit describes the Go memory limit (GOMEMLIMIT) in force.
func memoryLimit() string {
	l := debug.SetMemoryLimit(-1)
	if l == 1<<63-1 {
		return "none (GOMEMLIMIT unset)"
	}
	return fmt.Sprintf("%d MiB", l>>20)
}

// lineError keeps an error's chain but prints it on one line.
type lineError struct{ err error }

func (e lineError) Error() string {
	return strings.Join(strings.Fields(strings.ReplaceAll(e.err.Error(), "\n", "; ")), " ")
}
func (e lineError) Unwrap() error { return e.err }

// oneLine returns err printing on one line (errors.Join puts newlines
// between errors); errors.Is and As still see through it.
func oneLine(err error) error {
	if err == nil {
		return nil
	}
	return lineError{err}
}
