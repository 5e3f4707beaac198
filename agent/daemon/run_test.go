package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noWatchdog clears the watchdog environment the test may inherit.
func noWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("LISTEN_FDS", "")
	t.Setenv("LISTEN_PID", "")
}

func withWatchdog(t *testing.T, d time.Duration) {
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(d.Microseconds(), 10))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "")
	t.Setenv("LISTEN_PID", "")
}

func TestReadyOnlyAfterStart(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	eng := newFakeEngine()
	eng.gate = make(chan struct{})
	eng.onClose = func() {
		deadline := time.Now().Add(2 * time.Second)
		for !ns.seen("STOPPING=1") && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		ns.mark("ENGINE-CLOSED")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, Config{StateDir: dir, NoJournal: true}, eng)

	msg, _ := ns.expect(t, "STATUS=starting", 5*time.Second)
	if strings.Contains(msg, "READY=1") {
		t.Fatalf("READY with the starting status: %q", msg)
	}
	if got := ns.collect(200 * time.Millisecond); count(got, "READY=1") != 0 {
		t.Fatalf("READY=1 while Start has not returned: %q", got)
	}
	if st, err := ReadStatus(dir); err != nil || st.State != StateStarting {
		t.Fatalf("status file while starting: %+v, %v", st, err)
	}
	close(eng.gate)
	msg, _ = ns.expect(t, "READY=1", 5*time.Second)
	if !strings.Contains(msg, "STATUS=enforcing: policy serial 7 sha256:9f86d081884c, mode enforce, 1 rules") {
		t.Errorf("READY datagram %q lacks the enforcing STATUS", msg)
	}
	if !eng.started.Load() {
		t.Fatal("READY before the engine enforced")
	}
	st, err := ReadStatus(dir)
	if err != nil || st.State != StateEnforcing || st.Policy == nil || st.Policy.Serial != 7 || st.PID != os.Getpid() {
		t.Fatalf("status file when enforcing: %+v, %v", st, err)
	}

	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run = %v after a graceful stop", err)
	}
	ns.expect(t, "STOPPING=1", time.Second)
	ns.mu.Lock()
	order := strings.Join(ns.log, "|")
	ns.mu.Unlock()
	if i, j := strings.Index(order, "STOPPING=1"), strings.Index(order, "ENGINE-CLOSED"); i < 0 || j < i {
		t.Errorf("engine closed before STOPPING=1: %s", order)
	}
	if st, _ := ReadStatus(dir); st.State != StateStopped {
		t.Errorf("status after stop = %q", st.State)
	}
	if n, err := os.ReadFile(filepath.Join(dir, "starts")); err != nil || strings.TrimSpace(string(n)) != "1" {
		t.Errorf("start counter %q, %v", n, err)
	}
}

func TestStartFailure(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	eng := newFakeEngine()
	cause := errors.New("bpf is not an active LSM")
	eng.startErr = errors.Join(fmt.Errorf("preflight lsm: %w", cause), errors.New("preflight btf: kernel BTF missing"))
	dir := t.TempDir()
	err := wait(t, runAsync(context.Background(), Config{StateDir: dir, NoJournal: true}, eng))
	if err == nil {
		t.Fatal("Run succeeded without enforcement")
	}
	if strings.Contains(err.Error(), "\n") || !errors.Is(err, cause) {
		t.Fatalf("error %q: want one line wrapping the cause", err)
	}
	if !strings.HasPrefix(err.Error(), "starting enforcement: preflight lsm: bpf is not an active LSM; preflight btf") {
		t.Errorf("error = %q", err)
	}
	msg, before := ns.expect(t, "STATUS=failed: starting enforcement", 2*time.Second)
	if count(append(before, msg), "READY=1") != 0 {
		t.Fatalf("READY=1 sent for a failed start: %q", before)
	}
	if st, _ := ReadStatus(dir); st.State != StateFailed {
		t.Errorf("status = %+v", st)
	}
	if eng.closed.Load() {
		t.Error("Close called on an engine that never started")
	}
}

func TestStopDuringStart(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	eng := newFakeEngine()
	eng.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, Config{NoJournal: true}, eng)
	ns.expect(t, "STATUS=starting", 5*time.Second)
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if ns.seen("READY=1") {
		t.Fatal("READY=1 although Start never returned nil")
	}
}

func TestEventReaderOpenFailure(t *testing.T) {
	noWatchdog(t)
	listenNotify(t)
	eng := newFakeEngine()
	eng.eventsErr = errors.New("no ring buffer")
	err := wait(t, runAsync(context.Background(), Config{NoJournal: true}, eng))
	if err == nil || !strings.Contains(err.Error(), "opening the event reader: no ring buffer") {
		t.Fatalf("Run = %v", err)
	}
	if !eng.closed.Load() {
		t.Error("engine not closed")
	}
}

func TestWatchdogFollowsHealth(t *testing.T) {
	const timeout = 200 * time.Millisecond // pings every 100 ms
	withWatchdog(t, timeout)
	ns := listenNotify(t)
	eng := newFakeEngine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, Config{NoJournal: true}, eng)

	ns.expect(t, "READY=1", 5*time.Second)
	if got := ns.collect(5 * timeout / 2); count(got, "WATCHDOG=1") < 3 {
		t.Fatalf("healthy: %d pings in %s: %q", count(got, "WATCHDOG=1"), 5*timeout/2, got)
	}

	eng.setHealth(errors.New("link aegis_file_open is no longer pinned"))
	msg, _ := ns.expect(t, "STATUS=unhealthy", 2*time.Second)
	if !strings.Contains(msg, "enforcer: link aegis_file_open is no longer pinned") {
		t.Errorf("unhealthy STATUS %q lacks the reason", msg)
	}
	if got := ns.collect(3 * timeout); count(got, "WATCHDOG=1") != 0 {
		t.Fatalf("WATCHDOG=1 sent while a health check fails: %q", got)
	}

	eng.setHealth(nil)
	msg, _ = ns.expect(t, "STATUS=enforcing", 2*time.Second)
	if got := ns.collect(3 * timeout); count(got, "WATCHDOG=1") < 2 {
		t.Fatalf("pings did not resume after recovery (%q then %q)", msg, got)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestWatchdogEventReaderDeath(t *testing.T) {
	const timeout = 200 * time.Millisecond
	withWatchdog(t, timeout)
	ns := listenNotify(t)
	eng := newFakeEngine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, Config{NoJournal: true}, eng)
	ns.expect(t, "WATCHDOG=1", 5*time.Second)
	eng.reader.fail <- errors.New("epoll: bad file descriptor")
	msg, _ := ns.expect(t, "STATUS=unhealthy", 2*time.Second)
	if !strings.Contains(msg, "events: event reader exited: reading events: epoll: bad file descriptor") {
		t.Errorf("STATUS %q", msg)
	}
	if got := ns.collect(3 * timeout); count(got, "WATCHDOG=1") != 0 {
		t.Fatalf("WATCHDOG=1 with a dead event reader: %q", got)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestWatchdogHungHealthCheck(t *testing.T) {
	const timeout = 200 * time.Millisecond
	withWatchdog(t, timeout)
	ns := listenNotify(t)
	eng := newFakeEngine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, Config{NoJournal: true}, eng)
	ns.expect(t, "WATCHDOG=1", 5*time.Second)
	hang := make(chan struct{})
	eng.mu.Lock()
	eng.healthHang = hang
	eng.mu.Unlock()
	msg, _ := ns.expect(t, "STATUS=unhealthy", 2*time.Second)
	if !strings.Contains(msg, "health checks did not return within") {
		t.Errorf("STATUS %q", msg)
	}
	if got := ns.collect(3 * timeout); count(got, "WATCHDOG=1") != 0 {
		t.Fatalf("WATCHDOG=1 while a health check hangs: %q", got)
	}
	eng.mu.Lock()
	eng.healthHang = nil
	eng.mu.Unlock()
	close(hang)
	ns.expect(t, "STATUS=enforcing", 2*time.Second)
	ns.expect(t, "WATCHDOG=1", 2*time.Second)
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestNoWatchdogPingsWithoutWatchdog(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	eng := newFakeEngine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, Config{NoJournal: true, HealthInterval: 20 * time.Millisecond}, eng)
	ns.expect(t, "READY=1", 5*time.Second)
	eng.setHealth(errors.New("broken"))
	ns.expect(t, "STATUS=unhealthy", 2*time.Second) // checks still run and report
	cancel()
	wait(t, done)
	if ns.seen("WATCHDOG=1") {
		t.Fatal("WATCHDOG=1 sent without WATCHDOG_USEC")
	}
}

func TestMetricsServed(t *testing.T) {
	noWatchdog(t)
	ns := listenNotify(t)
	eng := newFakeEngine()
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, Config{NoJournal: true, MetricsListen: "unix:" + sock}, eng)
	ns.expect(t, "READY=1", 5*time.Second)
	// The first health round may still be running right after READY on a
	// loaded machine: wait for its result before checking everything.
	body := scrapeUnix(t, sock)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(body, `aegisbpf_health_check_ok{check="events"} 1`) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		body = scrapeUnix(t, sock)
	}
	for _, want := range []string{
		"aegisbpf_enforcement_active 1",
		`aegisbpf_rule_decisions_total{action="deny",rule="protect-shadow"} 3`,
		`aegisbpf_health_check_ok{check="events"} 1`,
		"aegisbpf_events_reader_running 1",
		"aegisbpf_kernel_stats_ok 1",
		"aegisbpf_time_to_enforcement_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("metrics socket left after stop: %v", err)
	}
}

func TestBadMetricsListen(t *testing.T) {
	noWatchdog(t)
	listenNotify(t)
	eng := newFakeEngine()
	err := wait(t, runAsync(context.Background(), Config{MetricsListen: "tcp:0.0.0.0:9464"}, eng))
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("Run = %v", err)
	}
	if eng.started.Load() {
		t.Error("engine started despite a configuration error")
	}
}

func scrapeUnix(t *testing.T, sock string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := c.Get("http://aegisbpf/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestOneLine(t *testing.T) {
	base := errors.New("base")
	err := oneLine(fmt.Errorf("x: %w", errors.Join(base, errors.New("two\nlines"))))
	if err.Error() != "x: base; two; lines" || !errors.Is(err, base) {
		t.Fatalf("%q", err)
	}
	if oneLine(nil) != nil {
		t.Fatal("oneLine(nil) != nil")
	}
}

func TestProcessAge(t *testing.T) {
	age, err := processAge()
	if err != nil {
		t.Fatal(err)
	}
	if age <= 0 || age > time.Hour {
		t.Fatalf("process age %v", age)
	}
}

func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var out strings.Builder
	cfg.RegisterFlags(fs, &out)
	if err := fs.Parse([]string{"--metrics-listen", "unix:/run/x.sock", "--events-json", "--no-journal", "--event-interval", "2s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsListen != "unix:/run/x.sock" || cfg.JSON != &out || !cfg.NoJournal ||
		cfg.EventInterval != 2*time.Second || cfg.StateDir != DefaultStateDir || cfg.EventMaxKeys == 0 {
		t.Fatalf("config %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
