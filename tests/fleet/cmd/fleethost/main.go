// Command fleethost is one host of the fleet simulation: the real updater
// (agent/update) following a channel, with the simulation's
// StandInActivation in place of the slots, and its metrics (the agent's
// aegisbpf_update_* and a stand-in aegisbpf_enforcement_active) served
// on a loopback port it writes to --port-file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/tests/fleet"
)

type config struct {
	dir, machineID, channel, keysDir, portFile, fail string
	interval, jitter                                 time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "", "this host's directory (update state, stand-in slots and journal)")
	flag.StringVar(&c.machineID, "machine-id", "", "this host's machine id")
	flag.StringVar(&c.channel, "channel", "", "the channel location")
	flag.StringVar(&c.keysDir, "keys", "", "the trusted keys")
	flag.StringVar(&c.portFile, "port-file", "", "write the metrics port here once listening")
	flag.StringVar(&c.fail, "fail", "", "comma-separated versions whose stand-in probation fails")
	flag.DurationVar(&c.interval, "interval", 3*time.Second, "time between update runs (the timer)")
	flag.DurationVar(&c.jitter, "jitter", 2*time.Second, "random delay added to each run (RandomizedDelaySec)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "fleethost: %v\n", err)
		os.Exit(1)
	}
}

// source is the metrics source: the updater's state and a host that is
// always enforcing (the stand-in has no agent).
type source struct {
	read func() (*metrics.Update, error)
}

func (s source) Snapshot() metrics.Snapshot {
	snap := metrics.Snapshot{Agent: metrics.Agent{Enforcing: true}}
	snap.Update, snap.UpdateErr = s.read()
	return snap
}

func run(ctx context.Context, c config) error {
	ring, err := keys.LoadRing(c.keysDir)
	if err != nil {
		return err
	}
	src, err := update.NewSource(c.channel, update.DefaultClient())
	if err != nil {
		return err
	}
	var failing []string
	if c.fail != "" {
		failing = strings.Split(c.fail, ",")
	}
	updDir := filepath.Join(c.dir, "update")
	u := &update.Updater{Dir: updDir, Source: src, Ring: ring, MachineID: c.machineID,
		Host: fleet.StandInActivation{Dir: c.dir, Fail: failing}, Reserve: 1 << 20, RetryDelay: time.Second}

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(source{update.MetricsReader(updDir)}, metrics.BuildInfo{Version: "fleethost"}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	defer srv.Close()
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	if err := atomicfile.Write(c.portFile, []byte(port+"\n"), 0o644); err != nil {
		return err
	}
	var lastSerial uint64
	var lastResult string
	for {
		delay := c.interval + time.Duration(rand.Int64N(int64(c.jitter)+1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		p, err := u.Apply(ctx)
		now := time.Now().UTC().Format(time.RFC3339Nano)
		switch {
		case err != nil && ctx.Err() == nil:
			fmt.Fprintf(os.Stderr, "%s %v\n", now, err)
		case p != nil && (p.Channel.Serial != lastSerial || p.Result != lastResult):
			// A line when the edition or the outcome changes, for the
			// simulation's post-mortems.
			lastSerial, lastResult = p.Channel.Serial, p.Result
			fmt.Fprintf(os.Stderr, "%s channel serial %d: %s\n", now, p.Channel.Serial, p.Detail)
		}
	}
}
