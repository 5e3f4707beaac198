package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

// notifySocket is a real NOTIFY_SOCKET: a unixgram socket in a temp dir.
type notifySocket struct {
	path string
	mu   sync.Mutex
	log  []string // datagrams and test markers, in order
	ch   chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	s := &notifySocket{path: path, ch: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(s.ch)
				return
			}
			msg := string(buf[:n])
			s.mark(msg)
			s.ch <- msg
		}
	}()
	return s
}

func (s *notifySocket) mark(m string) {
	s.mu.Lock()
	s.log = append(s.log, m)
	s.mu.Unlock()
}

func (s *notifySocket) seen(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.log {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// expect waits for a datagram containing sub and returns it; the
// datagrams before it are returned too.
func (s *notifySocket) expect(t *testing.T, sub string, timeout time.Duration) (string, []string) {
	t.Helper()
	var before []string
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-s.ch:
			if !ok {
				t.Fatalf("notify socket closed waiting for %q", sub)
			}
			if strings.Contains(m, sub) {
				return m, before
			}
			before = append(before, m)
		case <-timer.C:
			t.Fatalf("no %q within %s; got %q", sub, timeout, before)
		}
	}
}

// quiet collects datagrams for d and returns them.
func (s *notifySocket) collect(d time.Duration) []string {
	var got []string
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-s.ch:
			got = append(got, m)
		case <-timer.C:
			return got
		}
	}
}

func count(msgs []string, sub string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// fakeEngine is an Engine without a kernel.
type fakeEngine struct {
	gate      chan struct{} // Start waits for it to be closed
	ignoreCtx bool          // Start does not return when ctx ends
	startErr  error
	reader    *fakeReader
	eventsErr error
	onClose   func()

	mu         sync.Mutex
	healthErr  error
	healthHang chan struct{}

	started atomic.Bool
	closed  atomic.Bool
}

func newFakeEngine() *fakeEngine {
	g := make(chan struct{})
	close(g)
	return &fakeEngine{gate: g, reader: newFakeReader()}
}

func (f *fakeEngine) Start(ctx context.Context) error {
	if f.ignoreCtx {
		<-f.gate
	} else {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.startErr != nil {
		return f.startErr
	}
	f.started.Store(true)
	return nil
}

func (f *fakeEngine) setHealth(err error) {
	f.mu.Lock()
	f.healthErr = err
	f.mu.Unlock()
}

func (f *fakeEngine) Health() error {
	f.mu.Lock()
	err, hang := f.healthErr, f.healthHang
	f.mu.Unlock()
	if hang != nil {
		<-hang
	}
	return err
}

func (f *fakeEngine) Close() error {
	if f.onClose != nil {
		f.onClose()
	}
	f.closed.Store(true)
	return nil
}

func (f *fakeEngine) Events() (events.RecordReader, error) {
	if f.eventsErr != nil {
		return nil, f.eventsErr
	}
	return f.reader, nil
}

func (f *fakeEngine) Rules() []string { return []string{"protect-shadow"} }

func (f *fakeEngine) KernelStats() (*metrics.Kernel, error) {
	if !f.started.Load() {
		return nil, errors.New("not started")
	}
	return &metrics.Kernel{
		Policy:    metrics.Policy{Digest: "9f86d081884c7d659a2feaa0c55ad015", Serial: 7, Mode: "enforce", Rules: 1},
		Decisions: make([]uint64, int(events.HookMax)*int(events.ActionMax)),
		Rules:     []metrics.RuleCounters{{ID: "protect-shadow", Denied: 3}},
		Instances: 1,
		Programs:  []metrics.ProgramStats{{Name: "aegis_file_open"}},
	}, nil
}

// fakeReader is an events.RecordReader and Waker.
type fakeReader struct {
	wake   chan struct{}
	fail   chan error
	closed chan struct{}
	once   sync.Once
}

func newFakeReader() *fakeReader {
	return &fakeReader{wake: make(chan struct{}, 1), fail: make(chan error, 1), closed: make(chan struct{})}
}

func (r *fakeReader) Read() ([]byte, error) {
	select {
	case <-r.wake:
		return nil, events.ErrWoken
	case err := <-r.fail:
		return nil, err
	case <-r.closed:
		return nil, fmt.Errorf("fake: %w", events.ErrClosed)
	}
}

func (r *fakeReader) Wake() error {
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

func (r *fakeReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// runAsync runs Run and returns its result channel.
func runAsync(ctx context.Context, cfg Config, eng Engine) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, eng) }()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}
