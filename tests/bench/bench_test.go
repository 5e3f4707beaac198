package bench

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// preflight skips when the host cannot run the benchmark.
func preflight(tb testing.TB) {
	tb.Helper()
	err := Preflight()
	if errors.Is(err, ErrUnsupported) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// open returns a fixture with rules synthetic rules, skipping when the host
// cannot run the benchmark (see Preflight).
func open(tb testing.TB, rules int) *Fixture {
	tb.Helper()
	f, err := Open(rules, tb.TempDir())
	if errors.Is(err, ErrUnsupported) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// TestDecisions checks that every timed case decides as expected.
func TestDecisions(t *testing.T) {
	preflight(t)
	for _, n := range []int{0, 1, 10, 1000} {
		t.Run(fmt.Sprintf("rules=%d", n), func(t *testing.T) {
			f := open(t, n)
			if f.WalkErr != nil {
				t.Logf("walk cases not checked: %v", f.WalkErr)
			}
			if err := f.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// benchRules are the rule counts of issue 4's benchmark; cmd/decisionbench
// adds 1M.
var benchRules = []int{10, 1000, 100000}

// report runs timed with b.N repetitions in one test run and reports the
// kernel's own time per run beside the ns/op the testing package measures
// around the system call.
func report(b *testing.B, timed func(repeat int, reset func()) (Result, error)) {
	b.Helper()
	res, err := timed(b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(res.PerRun)/float64(time.Nanosecond), "kernel-ns/op")
}

// BenchmarkDecide times the level-0 decision (bench_decide) and the empty
// program at each rule count.
func BenchmarkDecide(b *testing.B) {
	preflight(b)
	for _, n := range benchRules {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f := open(b, n)
			if err := f.Check(); err != nil {
				b.Fatal(err)
			}
			b.Run("case=empty", func(b *testing.B) { report(b, f.Empty) })
			for _, c := range DecideCases() {
				for _, keys := range []Keys{OneKey, AllKeys} {
					b.Run(fmt.Sprintf("case=%s/keys=%s", c.Name, keys), func(b *testing.B) {
						report(b, func(repeat int, reset func()) (Result, error) {
							return f.Decide(c, keys, repeat, reset)
						})
					})
				}
			}
		})
	}
}

// BenchmarkWalk times decide_dentry on real files (bench_walk).
func BenchmarkWalk(b *testing.B) {
	preflight(b)
	for _, n := range benchRules {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f := open(b, n)
			if f.WalkErr != nil {
				b.Skip(f.WalkErr)
			}
			if err := f.Check(); err != nil {
				b.Fatal(err)
			}
			for _, w := range WalkCases() {
				b.Run("case="+w.Name, func(b *testing.B) {
					report(b, func(repeat int, reset func()) (Result, error) {
						return f.Walk(w, repeat, reset)
					})
				})
			}
		})
	}
}
