package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// consumerEnv makes this test binary the pipeline's consumer process.
const consumerEnv = "AEGISBPF_BENCH_CONSUMER"

// TestPipelineConsumer is the consumer process of TestPipeline; it does
// nothing in a normal run.
func TestPipelineConsumer(t *testing.T) {
	if os.Getenv(consumerEnv) == "" {
		t.Skip("only the consumer process of TestPipeline")
	}
	if err := Consume(3, os.Stdin, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// TestPipeline checks the pipeline benchmark's accounting: at a modest
// rate every event produced is read, none is dropped, and the producer
// keeps its rate.
func TestPipeline(t *testing.T) {
	preflight(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(consumerEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := RunPipeline(ctx, self, []string{"-test.run=^TestPipelineConsumer$"}, 20000, time.Second, 8)
	if err != nil {
		t.Fatal(err)
	}
	if r.Produced < 18000 || !r.Reached() {
		t.Errorf("produced %d events in %s, want about 20000", r.Produced, r.Duration)
	}
	if r.Dropped != 0 || r.Lost() != 0 {
		t.Errorf("dropped %d, lost %d of %d events, want none", r.Dropped, r.Lost(), r.Produced)
	}
	if r.Consumer.Entries == 0 || r.Consumer.RSSPeak == 0 || r.Consumer.LagSamples == 0 {
		t.Errorf("consumer report incomplete: %+v", r.Consumer)
	}
}
