package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

// check is one health check. fn gets the time of the round.
type check struct {
	name string
	fn   func(now time.Time) error
}

// checkState is a check's result for metrics.
type checkState struct {
	ok       bool
	failures uint64
}

// watchdog runs the health checks every interval and pings systemd's
// watchdog only when all pass. The checks of a round run on their own
// goroutine: one that hangs past timeout fails the round (and the next
// rounds wait for it rather than pile up goroutines).
type watchdog struct {
	n        *notifier
	log      *slog.Logger
	checks   []check
	enabled  bool          // systemd's watchdog is on: ping
	timeout  time.Duration // WATCHDOG_USEC
	interval time.Duration
	// onChange is called when the health state or its reason changes,
	// with the STATUS line sent.
	onChange func(healthy bool, status string)
	okStatus func() string

	inflight chan []error // the running round's result, nil when none

	mu      sync.Mutex // guards what metrics read
	healthy bool
	reason  string
	pings   uint64
	states  map[string]*checkState
}

func newWatchdog(n *notifier, log *slog.Logger, timeout, fallback time.Duration, checks []check) *watchdog {
	w := &watchdog{n: n, log: log, checks: checks, timeout: timeout, healthy: true,
		states: map[string]*checkState{}}
	w.enabled = timeout > 0
	w.interval = roundInterval(timeout, fallback)
	for _, c := range checks {
		w.states[c.name] = &checkState{ok: true}
	}
	return w
}

// run pings right away (READY was just sent) and then every interval until
// ctx ends.
func (w *watchdog) run(ctx context.Context) {
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	w.round(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w.round(now)
		}
	}
}

// round runs the checks once and pings when they all pass.
func (w *watchdog) round(now time.Time) {
	errs, ok := w.evaluate(now)
	var failed []string
	w.mu.Lock()
	for i, c := range w.checks {
		st := w.states[c.name]
		switch {
		case !ok:
			st.ok = false
			st.failures++
		case errs[i] != nil:
			st.ok = false
			st.failures++
			failed = append(failed, c.name+": "+errs[i].Error())
		default:
			st.ok = true
		}
	}
	if !ok {
		failed = []string{fmt.Sprintf("health checks did not return within %s", w.checkTimeout())}
	}
	healthy := len(failed) == 0
	reason := strings.Join(failed, "; ")
	changed := healthy != w.healthy || reason != w.reason
	w.healthy, w.reason = healthy, reason
	w.mu.Unlock()

	if healthy {
		if w.enabled && w.n.send("WATCHDOG=1") {
			w.mu.Lock()
			w.pings++
			w.mu.Unlock()
		}
		if changed {
			status := w.okStatus()
			w.n.status(status)
			w.log.Info("health checks pass again; watchdog pings resumed", "status", status)
			w.onChange(true, status)
		}
		return
	}
	if changed {
		status := "unhealthy, watchdog pings stopped: " + reason
		w.n.status(status)
		w.log.Error("health check failed; watchdog pings stopped", "reason", reason, "watchdog", w.enabled)
		w.onChange(false, status)
	}
}

func (w *watchdog) checkTimeout() time.Duration { return w.interval / 2 }

// roundInterval is the time between health rounds: half the watchdog
// timeout (sd_watchdog_enabled(3)'s advice), or fallback without one.
func roundInterval(timeout, fallback time.Duration) time.Duration {
	if timeout > 0 {
		return timeout / 2
	}
	return fallback
}

// evaluate runs the checks with a timeout; ok is false when they did not
// return in time.
func (w *watchdog) evaluate(now time.Time) (errs []error, ok bool) {
	if w.inflight == nil {
		ch := make(chan []error, 1)
		w.inflight = ch
		go func() {
			errs := make([]error, len(w.checks))
			for i, c := range w.checks {
				errs[i] = c.fn(now)
			}
			ch <- errs
		}()
	}
	timer := time.NewTimer(w.checkTimeout())
	defer timer.Stop()
	select {
	case errs := <-w.inflight:
		w.inflight = nil
		return errs, true
	case <-timer.C:
		return nil, false
	}
}

// metrics returns the watchdog's state for a scrape.
func (w *watchdog) metrics() (metrics.Watchdog, []metrics.Check, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd := metrics.Watchdog{Enabled: w.enabled, Timeout: w.timeout, Healthy: w.healthy, Pings: w.pings}
	var cs []metrics.Check
	enforcerOK := true
	for _, c := range w.checks {
		st := w.states[c.name]
		cs = append(cs, metrics.Check{Name: c.name, OK: st.ok, Failures: st.failures})
		if c.name == checkEnforcer {
			enforcerOK = st.ok
		}
	}
	return wd, cs, enforcerOK
}

// Health check names (the check label of metrics).
const (
	checkEnforcer = "enforcer"
	checkEvents   = "events"
)
