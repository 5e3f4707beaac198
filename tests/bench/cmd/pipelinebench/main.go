// Command pipelinebench measures the agent's event pipeline on this host
// (see tests/bench/pipeline.go): a BPF program writes audit events into a
// real ring buffer at fixed rates while a second process, this command
// with -consume, reads, decodes and aggregates them with the agent's code.
// It prints the markdown section of docs/PERFORMANCE.md. It needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/bench"
)

type config struct {
	rates    []int
	duration time.Duration
	search   time.Duration
	ladder   []int
	keys     int
	out      string
}

func main() {
	var cfg config
	consume := flag.Bool("consume", false, "internal: be the consumer, reading the ring buffer at descriptor 3")
	rates := flag.String("rates", "100000,200000,500000,1000000", "comma-separated fixed rates, events per second")
	flag.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long each fixed rate runs")
	ladder := flag.String("ladder", "1500000,2000000,3000000,4000000,6000000,8000000", "rates above the fixed ones tried for the highest with zero drops")
	flag.DurationVar(&cfg.search, "search-duration", 10*time.Second, "how long each ladder rate and the unthrottled run last")
	flag.IntVar(&cfg.keys, "keys", 64, "distinct aggregator entries the events make")
	flag.StringVar(&cfg.out, "o", "", "write the markdown here instead of standard output")
	flag.Parse()
	if *consume {
		if err := bench.Consume(3, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "pipelinebench consumer:", err)
			os.Exit(1)
		}
		return
	}
	cfg.rates = bench.MustCounts("pipelinebench", "rate", *rates)
	cfg.ladder = bench.MustCounts("pipelinebench", "ladder rate", *ladder)
	if cfg.duration <= 0 || cfg.search <= 0 || cfg.keys < 1 {
		fmt.Fprintln(os.Stderr, "pipelinebench: -duration, -search-duration and -keys must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bench.Exit("pipelinebench", run(ctx, cfg))
}

func run(ctx context.Context, cfg config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r := bench.PipelineReport{Machine: bench.ReadMachine(time.Now()), Keys: cfg.keys, Duration: cfg.duration, Search: cfg.search}
	measure := func(rate int, d time.Duration) (bench.PipelineRun, error) {
		fmt.Fprintf(os.Stderr, "pipelinebench: rate %s for %s\n", bench.RateString(rate), d)
		pr, err := bench.RunPipeline(ctx, self, []string{"-consume"}, rate, d, cfg.keys)
		if err != nil {
			return pr, err
		}
		if pr.Lost() != 0 || pr.Consumer.DecodeErrors != 0 {
			return pr, fmt.Errorf("rate %d: %d events produced and not dropped were never read (%d decode errors)",
				rate, pr.Lost(), pr.Consumer.DecodeErrors)
		}
		fmt.Fprintf(os.Stderr, "pipelinebench:   achieved %.0f/s, dropped %d, read %d, consumer CPU %s\n",
			pr.Achieved(), pr.Dropped, pr.Consumer.Records, pr.ConsumerCPU)
		return pr, nil
	}
	for _, rate := range cfg.rates {
		pr, err := measure(rate, cfg.duration)
		if err != nil {
			return err
		}
		r.Fixed = append(r.Fixed, pr)
	}
	// The ladder: rates above the best fixed one with zero drops, until
	// one drops or the producer cannot reach it.
	best := 0
	for _, pr := range r.Fixed {
		if pr.Dropped == 0 && pr.Reached() {
			best = max(best, pr.Rate)
		}
	}
	for _, rate := range cfg.ladder {
		if rate <= best {
			continue
		}
		pr, err := measure(rate, cfg.search)
		if err != nil {
			return err
		}
		r.Ladder = append(r.Ladder, pr)
		if pr.Dropped != 0 || !pr.Reached() {
			break
		}
	}
	if r.Unthrottled, err = measure(0, cfg.search); err != nil {
		return err
	}
	r.Machine.LoadAfter = bench.LoadAvg()
	var w io.Writer = os.Stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return r.Markdown(w)
}
