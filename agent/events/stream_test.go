package events

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStream(t *testing.T) {
	const bound = time.Second
	t.Run("idle reader stays healthy through wake-ups", func(t *testing.T) {
		r := newFakeReader(1)
		s := NewStream(r, handlerFunc(func(*bpf.AegisEvent) {}), nil)
		go s.Run()
		waitFor(t, "reading", func() bool { return s.Stats().Running })
		now := time.Now()
		for i := range 5 {
			if err := s.Check(now.Add(time.Duration(i)*bound), bound); err != nil {
				t.Fatalf("check %d of an idle reader: %v", i, err)
			}
			waitFor(t, "wake-up answered", func() bool { return s.Stats().Wakes == uint64(i+1) })
		}
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		<-s.Done()
	})
	t.Run("unanswered wake-up fails after bound", func(t *testing.T) {
		r := newFakeReader(1)
		block := make(chan struct{})
		s := NewStream(r, handlerFunc(func(*bpf.AegisEvent) { <-block }), nil)
		go s.Run()
		ev := sample("cat", "/x", 1)
		r.ch <- encode(&ev)
		waitFor(t, "the record handled", func() bool { return s.state.Load() == stateHandling })
		now := time.Now()
		if err := s.Check(now, bound); err != nil {
			t.Fatalf("first check: %v", err)
		}
		if err := s.Check(now.Add(bound/2), bound); err != nil {
			t.Fatalf("check within bound: %v", err)
		}
		err := s.Check(now.Add(2*bound), bound)
		if err == nil || !strings.Contains(err.Error(), "unresponsive") {
			t.Fatalf("check after bound = %v, want unresponsive", err)
		}
		close(block)
		waitFor(t, "recovery", func() bool { return s.Stats().Records == 1 })
		if err := s.Check(now.Add(3*bound), bound); err != nil {
			t.Fatalf("check after recovery: %v", err)
		}
		r.Close()
		<-s.Done()
	})
	t.Run("reader that cannot be woken", func(t *testing.T) {
		f := newFakeReader(1)
		var handling atomic.Bool
		block := make(chan struct{})
		s := NewStream(plainReader{f}, handlerFunc(func(*bpf.AegisEvent) {
			if handling.Load() {
				<-block
			}
		}), nil)
		go s.Run()
		waitFor(t, "reading", func() bool { return s.state.Load() == stateReading })
		now := time.Now()
		for i := range 30 { // blocked in Read for a long time is fine
			if err := s.Check(now.Add(time.Duration(i)*bound/2), bound); err != nil {
				t.Fatalf("idle check %d: %v", i, err)
			}
		}
		handling.Store(true)
		ev := sample("cat", "/x", 1)
		f.ch <- encode(&ev)
		waitFor(t, "handling", func() bool { return s.state.Load() == stateHandling })
		if err := s.Check(now.Add(15*bound), bound); err != nil {
			t.Fatalf("check as handling starts: %v", err)
		}
		if err := s.Check(now.Add(17*bound), bound); err == nil {
			t.Fatal("a reader stuck handling a record passed")
		}
		close(block)
		if err := s.Stop(); err != nil { // closes: no Wake
			t.Fatal(err)
		}
		<-s.Done()
		if s.Stats().Records != 1 {
			t.Errorf("records = %d", s.Stats().Records)
		}
	})
	t.Run("reader error ends Run and fails Check", func(t *testing.T) {
		r := newFakeReader(1)
		s := NewStream(r, handlerFunc(func(*bpf.AegisEvent) {}), nil)
		errc := make(chan error, 1)
		go func() { errc <- s.Run() }()
		boom := errors.New("boom")
		r.fail <- boom
		if err := <-errc; !errors.Is(err, boom) {
			t.Fatalf("Run = %v", err)
		}
		if err := s.Check(time.Now(), bound); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("Check = %v", err)
		}
	})
	t.Run("close is a clean end but fails Check", func(t *testing.T) {
		r := newFakeReader(1)
		s := NewStream(r, handlerFunc(func(*bpf.AegisEvent) {}), nil)
		errc := make(chan error, 1)
		go func() { errc <- s.Run() }()
		r.Close()
		if err := <-errc; err != nil {
			t.Fatalf("Run after Close = %v", err)
		}
		if err := s.Check(time.Now(), bound); err == nil {
			t.Fatal("Check passed for a reader closed under it")
		}
	})
	t.Run("stop drains pending records", func(t *testing.T) {
		r := newFakeReader(101)
		var n atomic.Int64
		s := NewStream(r, handlerFunc(func(*bpf.AegisEvent) { n.Add(1) }), nil)
		ev := sample("cat", "/x", 1)
		for range 100 {
			r.ch <- encode(&ev)
		}
		r.ch <- []byte{1, 2, 3} // a short record: counted, not fatal
		errc := make(chan error, 1)
		go func() { errc <- s.Run() }()
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if n.Load() != 100 || s.Stats().DecodeErrors != 1 {
			t.Fatalf("handled %d, decode errors %d", n.Load(), s.Stats().DecodeErrors)
		}
	})
	t.Run("lag and last read are sampled", func(t *testing.T) {
		r := newFakeReader(1)
		clock := func() time.Duration { return 10 * time.Second }
		s := NewStream(r, handlerFunc(func(*bpf.AegisEvent) {}), clock)
		go s.Run()
		ev := sample("cat", "/x", uint64(9*time.Second))
		r.ch <- encode(&ev)
		waitFor(t, "a record", func() bool { return s.Stats().Records == 1 })
		st := s.Stats()
		if st.Lag != time.Second || st.LastRead.IsZero() || st.Backlog != -1 {
			t.Fatalf("stats = %+v", st)
		}
		r.Close()
		<-s.Done()
	})
}
