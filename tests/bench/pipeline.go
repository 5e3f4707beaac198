package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/metrics"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/tests/bench/proc"
)

// The event pipeline benchmark: bench_produce (bench.bpf.c) writes audit
// events through report() of lib/event.h into a real ring buffer at a fixed
// rate, driven by BPF_PROG_TEST_RUN from this process, while a consumer
// process runs the agent's own pipeline on that ring buffer: the reader
// (events.Ringbuf), the decoder and stream, the aggregator and a JSON sink
// writing each interval's entries to io.Discard. Two processes, so that the
// consumer's CPU time and memory are its own.

// Producer is bench_produce loaded with its ring buffer and counters.
type Producer struct {
	objs struct {
		Prog   *ebpf.Program  `ebpf:"bench_produce"`
		Events *ebpf.Map      `ebpf:"events"`
		Stats  *ebpf.Map      `ebpf:"stats"`
		Input  *ebpf.Variable `ebpf:"produce_input"`
		Cursor *ebpf.Variable `ebpf:"produce_cursor"`
	}
}

// OpenProducer loads bench_produce; keys is how many distinct aggregator
// entries its events make (rule and inode cycle through keys values).
func OpenProducer(keys int) (*Producer, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	_ = rlimit.RemoveMemlock() // Preflight has reported what matters
	spec, err := bpf.LoadBench()
	if err != nil {
		return nil, fmt.Errorf("parsing the benchmark object: %w", err)
	}
	p := &Producer{}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: loading %s: %v", ErrUnsupported, bpf.BenchProgBenchProduce, lastLines(fmt.Sprintf("%+v", ve), 3))
		}
		return nil, fmt.Errorf("loading %s: %w", bpf.BenchProgBenchProduce, err)
	}
	if err := p.objs.Input.Set(bpf.BenchBenchProduceInput{Keys: uint32(max(keys, 1))}); err != nil {
		p.Close()
		return nil, fmt.Errorf("setting the producer's input: %w", err)
	}
	return p, nil
}

// Close releases the program and its maps.
func (p *Producer) Close() error {
	var errs []error
	for _, c := range []io.Closer{p.objs.Prog, p.objs.Events, p.objs.Stats} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// RingBuffer is the ring buffer the events go to.
func (p *Producer) RingBuffer() *ebpf.Map { return p.objs.Events }

// Produce runs the program about n times in one BPF_PROG_TEST_RUN call
// (more when a signal interrupts the call: the library then repeats it).
func (p *Producer) Produce(n int) error {
	if n <= 0 {
		return nil
	}
	if _, err := p.objs.Prog.Run(&ebpf.RunOptions{Data: packet, Repeat: uint32(n)}); err != nil {
		return fmt.Errorf("test-running %s: %w", bpf.BenchProgBenchProduce, err)
	}
	return nil
}

// Attempted counts the events produced or dropped so far, as the program
// counts its runs.
func (p *Producer) Attempted() (uint64, error) {
	var n uint64
	if err := p.objs.Cursor.Get(&n); err != nil {
		return 0, fmt.Errorf("reading the producer's run count: %w", err)
	}
	return n, nil
}

// Drops reads the ring buffer drops the program counted
// (AEGIS_STAT_RINGBUF_DROPS, summed over CPUs).
func (p *Producer) Drops() (uint64, error) {
	var per []uint64
	if err := p.objs.Stats.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("reading the drop counter: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// ConsumerResult is what the consumer process reports when it stops.
type ConsumerResult struct {
	Records      uint64 `json:"records"`
	DecodeErrors uint64 `json:"decode_errors"`
	Entries      uint64 `json:"entries"` // aggregated entries written to the sink
	MaxBacklog   int    `json:"max_backlog_bytes"`
	LagP50Ns     int64  `json:"lag_p50_ns"`
	LagMaxNs     int64  `json:"lag_max_ns"`
	LagSamples   int    `json:"lag_samples"`
	HeapPeak     uint64 `json:"heap_peak_bytes"`
	RSSPeak      uint64 `json:"rss_peak_bytes"` // VmHWM
}

// countingSink writes entries as the agent's JSON sink does, to
// io.Discard, and counts them.
type countingSink struct {
	json    *events.JSONSink
	entries uint64
}

func (s *countingSink) Name() string { return "bench" }

func (s *countingSink) Write(b *events.Batch) error {
	s.entries += uint64(len(b.Entries))
	return s.json.Write(b)
}

// Consume is the consumer process's body: it runs the agent's pipeline on
// the ring buffer map at descriptor fd, writes "ready" to out once
// reading, and on stop (the closing of in) stops the pipeline, which drains
// the ring buffer, and writes its ConsumerResult as one JSON line.
func Consume(fd int, in io.Reader, out io.Writer) error {
	m, err := ebpf.NewMapFromFD(fd)
	if err != nil {
		return fmt.Errorf("opening the ring buffer from descriptor %d: %w", fd, err)
	}
	defer m.Close()
	rb, err := events.OpenRingbuf(m)
	if err != nil {
		return err
	}
	sink := &countingSink{json: events.NewJSONSink(io.Discard)}
	p := events.NewPipeline(events.PipelineConfig{Reader: rb, Sinks: []events.Sink{sink}})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()

	var res ConsumerResult
	var lags []int64
	var last time.Time
	sample := func(now time.Time) {
		_ = p.Check(now, time.Minute) // wakes the reader and asks for a lag sample
		st := p.Stats().Reader
		res.MaxBacklog = max(res.MaxBacklog, st.Backlog)
		if !st.LastRead.IsZero() && st.LastRead != last {
			last = st.LastRead
			lags = append(lags, int64(st.Lag))
		}
		res.HeapPeak = max(res.HeapPeak, heapInUse())
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, in); close(stop) }()
	fmt.Fprintln(out, "ready")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case now := <-tick.C:
			sample(now)
		case <-stop:
			break wait
		}
	}
	sample(time.Now())
	cancel()
	if err := <-runErr; err != nil {
		return err
	}
	st := p.Stats()
	res.Records, res.DecodeErrors, res.Entries = st.Reader.Records, st.Reader.DecodeErrors, sink.entries
	res.LagSamples = len(lags)
	if len(lags) > 0 {
		slices.Sort(lags)
		res.LagP50Ns, res.LagMaxNs = lags[len(lags)/2], lags[len(lags)-1]
	}
	res.RSSPeak, _ = proc.Status(os.Getpid(), "VmHWM")
	return json.NewEncoder(out).Encode(res)
}

// PipelineRun is one rate's measurement.
type PipelineRun struct {
	Rate     int // target events per second; 0 = as fast as the producer can
	Duration time.Duration
	Produced uint64 // events the program tried to write
	Dropped  uint64 // of which the ring buffer had no room for
	Consumer ConsumerResult
	// ConsumerCPU is the consumer's CPU time while producing and draining,
	// from /proc.
	ConsumerCPU time.Duration
	Elapsed     time.Duration // producing, then draining
}

// Achieved is the producer's rate.
func (r PipelineRun) Achieved() float64 { return float64(r.Produced) / r.Duration.Seconds() }

// Lost is what was produced and not dropped but not read either: it must
// be zero.
func (r PipelineRun) Lost() int64 {
	return int64(r.Produced) - int64(r.Dropped) - int64(r.Consumer.Records)
}

// PerCoreRate is events read per second of the consumer's CPU time: what
// one core running the agent's reader sustains.
func (r PipelineRun) PerCoreRate() float64 {
	if r.ConsumerCPU <= 0 {
		return 0
	}
	return float64(r.Consumer.Records) / r.ConsumerCPU.Seconds()
}

// RunPipeline starts the consumer (self, the path of an executable that
// calls Consume when given consumerArgs) and produces at rate events per
// second (0: unthrottled) for d.
func RunPipeline(ctx context.Context, self string, consumerArgs []string, rate int, d time.Duration, keys int) (PipelineRun, error) {
	run := PipelineRun{Rate: rate}
	p, err := OpenProducer(keys)
	if err != nil {
		return run, err
	}
	defer p.Close()
	fdFile, err := mapFile(p.RingBuffer())
	if err != nil {
		return run, err
	}
	defer fdFile.Close()

	cmd := exec.CommandContext(ctx, self, consumerArgs...)
	cmd.ExtraFiles = []*os.File{fdFile} // descriptor 3 in the consumer
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return run, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return run, err
	}
	if err := cmd.Start(); err != nil {
		return run, fmt.Errorf("starting the consumer: %w", err)
	}
	defer cmd.Wait() //nolint:errcheck // reaped here on early returns
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		return run, fmt.Errorf("the consumer did not start: %q %v", lines.Text(), lines.Err())
	}
	dropsBefore, err := p.Drops()
	if err != nil {
		return run, err
	}
	cpuBefore, err := proc.CPU(cmd.Process.Pid)
	if err != nil {
		return run, err
	}

	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return run, err
		}
		el := time.Since(start)
		if el >= d {
			run.Duration = el
			break
		}
		n := 4096 // unthrottled: large calls, still checking the clock
		if rate > 0 {
			done, err := p.Attempted()
			if err != nil {
				return run, err
			}
			due := int64(el.Seconds()*float64(rate)) - int64(done)
			if due <= 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			n = int(min(due, int64(rate/100+1))) // never more than 10 ms of events at once
		}
		if err := p.Produce(n); err != nil {
			return run, err
		}
	}
	if run.Produced, err = p.Attempted(); err != nil {
		return run, err
	}
	dropsAfter, err := p.Drops()
	if err != nil {
		return run, err
	}
	run.Dropped = dropsAfter - dropsBefore
	stdin.Close() // the consumer drains and reports
	if !lines.Scan() {
		return run, fmt.Errorf("the consumer reported nothing: %v", lines.Err())
	}
	if err := json.Unmarshal(lines.Bytes(), &run.Consumer); err != nil {
		return run, fmt.Errorf("the consumer's report %q: %w", lines.Text(), err)
	}
	run.Elapsed = time.Since(start)
	cpuAfter, err := proc.CPU(cmd.Process.Pid)
	if err != nil {
		return run, err
	}
	run.ConsumerCPU = cpuAfter - cpuBefore
	if err := cmd.Wait(); err != nil {
		return run, fmt.Errorf("the consumer: %w", err)
	}
	return run, nil
}

// mapFile duplicates m's descriptor into an *os.File to hand to a child.
func mapFile(m *ebpf.Map) (*os.File, error) {
	fd := m.FD()
	if fd < 0 {
		return nil, errors.New("the ring buffer has no descriptor")
	}
	dup, err := dupCloexec(fd)
	if err != nil {
		return nil, fmt.Errorf("duplicating the ring buffer's descriptor: %w", err)
	}
	return os.NewFile(uintptr(dup), "ringbuf"), nil
}

func dupCloexec(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

// heapInUse is the Go heap's live objects in bytes, as the agent's
// go_memstats_heap_alloc_bytes reports it.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
