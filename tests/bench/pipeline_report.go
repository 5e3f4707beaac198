package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Budgets of DESIGN.md §7 for the event pipeline.
const (
	// PipelinePerCoreBudget: events through ring buffer, reader and
	// aggregation per second of one core.
	PipelinePerCoreBudget = 1_000_000
	// PipelineZeroDropRate: sustained without a drop.
	PipelineZeroDropRate = 200_000
	// FloodRSSBudget: agent RSS under an event flood.
	FloodRSSBudget = 40 << 20
)

// Reached reports whether the producer kept within 2% of the target rate
// (always true unthrottled).
func (r PipelineRun) Reached() bool { return r.Rate == 0 || r.Achieved() >= 0.98*float64(r.Rate) }

// PipelineReport is one run of pipelinebench.
type PipelineReport struct {
	Machine
	Keys             int
	Duration, Search time.Duration
	Fixed            []PipelineRun // the fixed rates, Duration each
	Ladder           []PipelineRun // higher rates, Search each, until one dropped
	Unthrottled      PipelineRun
}

// RateString writes an event rate as 100k/s, 1.5M/s; 0 is unthrottled.
func RateString(rate int) string {
	switch {
	case rate == 0:
		return "unthrottled"
	case rate >= 1_000_000:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", float64(rate)/1e6), "0"), ".") + "M/s"
	case rate >= 1000:
		return fmt.Sprintf("%dk/s", rate/1000)
	}
	return fmt.Sprintf("%d/s", rate)
}

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// MaxZeroDrop is the highest target rate sustained without a drop, and
// whether the ladder found where drops begin (false: the limit is above
// the last rate tried, or the producer could not go faster).
func (r *PipelineReport) MaxZeroDrop() (rate int, bounded bool) {
	for _, pr := range append(append([]PipelineRun(nil), r.Fixed...), r.Ladder...) {
		if pr.Dropped == 0 && pr.Reached() {
			rate = max(rate, pr.Rate)
		} else if pr.Dropped > 0 {
			bounded = true
		}
	}
	return rate, bounded
}

// Markdown writes the report as its section of docs/PERFORMANCE.md.
func (r *PipelineReport) Markdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## Event pipeline on the host (ring buffer → reader → aggregation)\n\n")
	r.Machine.table(b)
	fmt.Fprintf(b, "Method: `bench_produce` (`bpf/bench.bpf.c`) writes audit events through `report()` of "+
		"`bpf/lib/event.h` (the decision and rule counters, `bpf_ringbuf_reserve`, the task fields, submit; "+
		"a full buffer counts a drop as in the hooks) into a real ring buffer of the agent's size (1 MiB, "+
		"about 2,900 events), driven by `BPF_PROG_TEST_RUN` at a fixed rate (calls of at most 10 ms of events). "+
		"A second process runs the agent's own pipeline on that buffer: `events.Ringbuf`, the decoder and "+
		"stream, the aggregator (%d distinct entries) and the JSON sink, writing every 5 s to `io.Discard`. "+
		"Each fixed rate runs %s, each higher rate %s until one drops. *CPU* and *RSS peak* are the "+
		"consumer process's (from /proc), over producing and draining; *per core* is events read per second "+
		"of the consumer's CPU time; *lag* is from the kernel's timestamp to reading, sampled every 100 ms; "+
		"*backlog* the most bytes found waiting. Every event produced and not dropped was read (checked). "+
		"Run `go run ./tests/bench/cmd/pipelinebench` as root.\n\n",
		r.Keys, r.Duration, r.Search)
	fmt.Fprintf(b, "| rate | achieved | events | dropped | lag p50 | lag max | backlog max | consumer CPU | per core | RSS peak | Go heap peak |\n")
	fmt.Fprintf(b, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	row := func(pr PipelineRun, note string) {
		achieved := fmt.Sprintf("%.0fk/s", pr.Achieved()/1000)
		if !pr.Reached() {
			achieved += " (producer-bound)"
		}
		fmt.Fprintf(b, "| %s%s | %s | %d | %d | %s | %s | %d B | %.1f%% | %.2fM/s | %s | %s |\n",
			RateString(pr.Rate), note, achieved, pr.Produced, pr.Dropped,
			time.Duration(pr.Consumer.LagP50Ns).Round(time.Microsecond), time.Duration(pr.Consumer.LagMaxNs).Round(time.Microsecond),
			pr.Consumer.MaxBacklog, 100*pr.ConsumerCPU.Seconds()/pr.Elapsed.Seconds(), pr.PerCoreRate()/1e6,
			mb(pr.Consumer.RSSPeak), mb(pr.Consumer.HeapPeak))
	}
	for _, pr := range r.Fixed {
		row(pr, "")
	}
	for _, pr := range r.Ladder {
		row(pr, " (ladder)")
	}
	row(r.Unthrottled, "")
	fmt.Fprintln(b)

	fmt.Fprintf(b, "| budget (DESIGN.md §7) | measured | met |\n| --- | --- | --- |\n")
	perCore := r.Unthrottled.PerCoreRate()
	fmt.Fprintf(b, "| ≥ 1M events/s through the pipeline on one core | %.2fM/s per CPU-second of the consumer (unthrottled) | %s |\n",
		perCore/1e6, yesNo(perCore >= PipelinePerCoreBudget))
	var at200 *PipelineRun
	for i := range r.Fixed {
		if r.Fixed[i].Rate == PipelineZeroDropRate {
			at200 = &r.Fixed[i]
		}
	}
	if at200 != nil {
		fmt.Fprintf(b, "| 0 drops at 200k/s sustained | %d drops of %d events over %s | %s |\n",
			at200.Dropped, at200.Produced, at200.Duration.Round(time.Second), yesNo(at200.Dropped == 0 && at200.Reached()))
	}
	var rss uint64
	for _, pr := range append(append(append([]PipelineRun(nil), r.Fixed...), r.Ladder...), r.Unthrottled) {
		rss = max(rss, pr.Consumer.RSSPeak)
	}
	fmt.Fprintf(b, "| RSS ≤ 40 MB under an event flood | %s, the pipeline's process alone (the agent's, in the VM: see the footprint section) | %s |\n",
		mb(rss), yesNo(rss <= FloodRSSBudget))
	maxRate, bounded := r.MaxZeroDrop()
	limit := "drops begin at the next rate tried"
	if !bounded {
		limit = "no rate tried dropped: the limit is higher, or the producer could not go faster"
	}
	fmt.Fprintf(b, "\nHighest rate sustained with zero drops: **%s** (%s). The seed project publishes no pipeline figure.\n",
		RateString(maxRate), limit)
	_, err := io.WriteString(w, b.String())
	return err
}
