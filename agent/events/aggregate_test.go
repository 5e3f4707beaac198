package events

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/bpf"
)

func flushAll(a *Aggregator) (entries []Entry, over overflow) {
	var b Batch
	a.Flush(&b, func(b *Batch) {
		entries = append(entries, b.Entries...)
		over = overflow{b.Overflow, b.OverflowFirstNs, b.OverflowLastNs}
	})
	return entries, over
}

func TestAggregator(t *testing.T) {
	t.Run("identical events fold", func(t *testing.T) {
		a := NewAggregator(16)
		for i := range 1000 {
			e := sample("cat", "/etc/shadow", uint64(1000+i))
			e.Pid, e.Tgid = uint32(2000+i), uint32(2000+i) // pids are not part of the key
			a.Add(&e)
		}
		got, _ := flushAll(a)
		if len(got) != 1 {
			t.Fatalf("%d entries, want 1", len(got))
		}
		if e := got[0]; e.Count != 1000 || e.FirstNs != 1000 || e.LastNs != 1999 || e.Tgid != 2000 {
			t.Errorf("entry = count %d first %d last %d tgid %d", e.Count, e.FirstNs, e.LastNs, e.Tgid)
		}
	})
	t.Run("out of order timestamps", func(t *testing.T) {
		a := NewAggregator(16)
		for _, ns := range []uint64{50, 10, 90, 30} {
			e := sample("cat", "/x", ns)
			a.Add(&e)
		}
		got, _ := flushAll(a)
		if got[0].FirstNs != 10 || got[0].LastNs != 90 {
			t.Errorf("first/last = %d/%d, want 10/90", got[0].FirstNs, got[0].LastNs)
		}
	})
	t.Run("bytes after the NUL do not split", func(t *testing.T) {
		a := NewAggregator(16)
		e1 := sample("cat", "/etc/shadow", 1)
		e2 := e1
		e2.Path[20], e2.Comm[10] = 'x', 'y' // stale bytes after the terminator
		a.Add(&e1)
		a.Add(&e2)
		if got, _ := flushAll(a); len(got) != 1 || got[0].Count != 2 {
			t.Fatalf("got %d entries", len(got))
		}
	})
	t.Run("each key field splits", func(t *testing.T) {
		mutate := map[string]func(*bpf.AegisEvent){
			"rule":   func(e *bpf.AegisEvent) { e.Rule = 9 },
			"hook":   func(e *bpf.AegisEvent) { e.Hook = HookExec },
			"action": func(e *bpf.AegisEvent) { e.Action = ActionAudit },
			"access": func(e *bpf.AegisEvent) { e.Access = AccessWrite },
			"comm":   func(e *bpf.AegisEvent) { e.Comm[0] = 'd' },
			"path":   func(e *bpf.AegisEvent) { e.Path[1] = 'v' },
			"cgroup": func(e *bpf.AegisEvent) { e.CgroupId++ },
			"uid":    func(e *bpf.AegisEvent) { e.Uid++ },
			"inode":  func(e *bpf.AegisEvent) { e.Ino++ },
			"addr":   func(e *bpf.AegisEvent) { e.Family, e.Addr[0] = familyInet, 10 },
			"port":   func(e *bpf.AegisEvent) { e.Port = 22 },
		}
		for name, m := range mutate {
			t.Run(name, func(t *testing.T) {
				a := NewAggregator(16)
				e1 := sample("cat", "/etc/shadow", 1)
				e2 := e1
				m(&e2)
				a.Add(&e1)
				a.Add(&e2)
				if got, _ := flushAll(a); len(got) != 2 {
					t.Fatalf("%d entries, want 2", len(got))
				}
			})
		}
	})
	t.Run("bounded with overflow counted", func(t *testing.T) {
		a := NewAggregator(8)
		for i := range 100 {
			e := sample("cat", fmt.Sprintf("/f%d", i), uint64(100+i))
			a.Add(&e)
		}
		e := sample("cat", "/f0", 500) // an existing key still counts as itself
		a.Add(&e)
		got, over := flushAll(a)
		if len(got) != 8 || over.Count != 92 || over.FirstNs != 108 || over.LastNs != 199 {
			t.Fatalf("%d entries, overflow %+v", len(got), over)
		}
		if got[0].Count != 2 {
			t.Errorf("/f0 count = %d, want 2", got[0].Count)
		}
		st := a.Stats()
		if st.Events != 101 || st.Overflow != 92 || st.Entries != 8 || st.Flushes != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("flush starts a new interval", func(t *testing.T) {
		a := NewAggregator(8)
		e := sample("cat", "/x", 1)
		a.Add(&e)
		flushAll(a)
		if got, over := flushAll(a); len(got) != 0 || over.Count != 0 {
			t.Fatalf("second flush: %d entries, %+v", len(got), over)
		}
		called := false
		a.Flush(&Batch{}, func(*Batch) { called = true })
		if called {
			t.Error("emit called for an empty interval")
		}
		a.Add(&e)
		if got, _ := flushAll(a); len(got) != 1 || got[0].Count != 1 {
			t.Fatalf("after reuse: %+v", got)
		}
	})
}

func TestAggregatorConcurrentFlush(t *testing.T) {
	a := NewAggregator(64)
	const n = 200000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			e := sample("cat", fmt.Sprintf("/f%d", i%32), uint64(i))
			a.Add(&e)
		}
	}()
	var total uint64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	count := func() {
		got, over := flushAll(a)
		for _, e := range got {
			total += e.Count
		}
		total += over.Count
	}
	for {
		select {
		case <-done:
			count()
			if total != n {
				t.Fatalf("counted %d events, want %d", total, n)
			}
			return
		default:
			count()
			time.Sleep(100 * time.Microsecond)
		}
	}
}

func TestAggregatorDoesNotAllocate(t *testing.T) {
	a := NewAggregator(64)
	evs := make([]bpf.AegisEvent, 64)
	for i := range evs {
		evs[i] = sample("cat", fmt.Sprintf("/some/protected/file%d", i), uint64(i))
	}
	i := 0
	add := func() {
		a.Add(&evs[i%len(evs)])
		i++
	}
	for range 1000 { // warm up both tables
		add()
	}
	flushAll(a)
	if n := testing.AllocsPerRun(10000, add); n != 0 {
		t.Fatalf("Add allocates %v times per call", n)
	}
	var b Batch
	emit := func(*Batch) {}
	if n := testing.AllocsPerRun(100, func() {
		for range 200 {
			add()
		}
		a.Flush(&b, emit)
	}); n != 0 {
		t.Fatalf("an interval of Adds and a Flush allocate %v times", n)
	}
}

func BenchmarkAggregateAdd(b *testing.B) {
	b.Run("same key", func(b *testing.B) {
		a := NewAggregator(0)
		e := sample("cat", "/etc/shadow", 1)
		b.ReportAllocs()
		for b.Loop() {
			a.Add(&e)
		}
	})
	b.Run("1024 keys", func(b *testing.B) {
		a := NewAggregator(2048)
		evs := make([]bpf.AegisEvent, 1024)
		for i := range evs {
			evs[i] = sample("cat", fmt.Sprintf("/var/lib/app/data/file-%d.db", i), uint64(i))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			a.Add(&evs[i&1023])
			i++
		}
	})
	b.Run("overflow", func(b *testing.B) {
		a := NewAggregator(16)
		evs := make([]bpf.AegisEvent, 1024)
		for i := range evs {
			evs[i] = sample("cat", fmt.Sprintf("/f-%d", i), uint64(i))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			a.Add(&evs[i&1023])
			i++
		}
	})
}

// BenchmarkPipeline measures the whole per-event path: a raw record
// decoded and aggregated through a Stream.
func BenchmarkStreamDecodeAggregate(b *testing.B) {
	e := sample("cat", "/etc/shadow", 1)
	raw := encode(&e)
	a := NewAggregator(0)
	r := &loopReader{raw: raw}
	s := NewStream(r, a, func() time.Duration { return 0 })
	b.ReportAllocs()
	b.SetBytes(RecordSize)
	r.n = b.N
	b.ResetTimer()
	if err := s.Run(); err != nil {
		b.Fatal(err)
	}
	if got := s.Stats().Records; got != uint64(b.N) {
		b.Fatalf("read %d records, want %d", got, b.N)
	}
}

// loopReader returns raw n times, then ErrClosed.
type loopReader struct {
	raw []byte
	n   int
}

func (l *loopReader) Read() ([]byte, error) {
	if l.n == 0 {
		return nil, ErrClosed
	}
	l.n--
	return l.raw, nil
}

func (l *loopReader) Close() error { return nil }
