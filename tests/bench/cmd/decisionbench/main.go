// Command decisionbench times the kernel side of the file decision on this
// host (see package bench) and prints the markdown tables of
// docs/PERFORMANCE.md. It needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aegisbpf/aegisbpf/tests/bench"
)

type config struct {
	rules  []int
	cidrs  []int
	repeat int
	runs   int
	out    string
	quiet  bool
}

func main() {
	var cfg config
	rules := flag.String("rules", "10,1000,100000,1000000", "comma-separated rule counts")
	cidrs := flag.String("cidrs", "10,1000,10000,100000", "comma-separated CIDR counts of the network decision")
	flag.IntVar(&cfg.repeat, "repeat", 200000, "runs per BPF_PROG_TEST_RUN call")
	flag.IntVar(&cfg.runs, "runs", 15, "calls per figure (the median is reported)")
	flag.StringVar(&cfg.out, "o", "", "write the markdown here instead of standard output")
	flag.BoolVar(&cfg.quiet, "q", false, "no progress on standard error")
	flag.Parse()
	cfg.rules = bench.MustCounts("decisionbench", "rule", *rules)
	cfg.cidrs = bench.MustCounts("decisionbench", "CIDR", *cidrs)
	if cfg.repeat < 1 || cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, "decisionbench: -repeat and -runs must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bench.Exit("decisionbench", run(ctx, cfg))
}

func run(ctx context.Context, cfg config) error {
	progress := func(s string) { fmt.Fprintln(os.Stderr, s) }
	if cfg.quiet {
		progress = nil
	}
	r, err := bench.Measure(ctx, cfg.rules, cfg.repeat, cfg.runs, progress)
	if err != nil {
		return err
	}
	if r.Net, err = bench.MeasureNet(ctx, cfg.cidrs, cfg.repeat, cfg.runs, progress); err != nil {
		return err
	}
	if cfg.out == "" {
		return r.Markdown(os.Stdout)
	}
	f, err := os.Create(cfg.out)
	if err != nil {
		return err
	}
	if err := r.Markdown(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
