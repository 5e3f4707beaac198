// Command vmbench boots each pinned kernel under qemu with the static agent
// and the guest benchmark (tests/bench/vmbench), collects its records and
// prints the markdown section of docs/PERFORMANCE.md. See package vmbench.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/tests/bench"
	"github.com/aegisbpf/aegisbpf/tests/bench/vmbench"
	"github.com/aegisbpf/aegisbpf/tests/vm"
)

func main() {
	kernels := flag.String("kernels", "all", "comma-separated kernel names or all")
	rules := flag.String("rules", "1,10,1000,100000", "policy sizes")
	runs := flag.Int("runs", 5, "timed runs per operation and configuration")
	iterations := flag.String("iterations", "20000,1000,100", "operations per run: open,connect,exec")
	idle := flag.Duration("idle", time.Minute, "how long the idle agent's CPU is measured")
	flood := flag.Duration("flood", 10*time.Second, "how long the event flood lasts")
	timeout := flag.Duration("timeout", 20*time.Minute, "hard limit per kernel boot")
	out := flag.String("o", "", "write the markdown here instead of standard output")
	logPath := flag.String("log", "", "also write the guests' consoles here")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := map[string]string{
		vmbench.EnvAgent: "/aegis/aegisbpf", vmbench.EnvRules: *rules, vmbench.EnvRuns: fmt.Sprint(*runs),
		vmbench.EnvIterations: *iterations, vmbench.EnvIdle: idle.String(), vmbench.EnvFlood: flood.String(),
	}
	agentEnv, err := unitEnvironment("systemd/aegisbpf.service")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmbench:", err)
		os.Exit(1)
	}
	env[vmbench.EnvAgentEnv] = strings.Join(agentEnv, " ")
	cmdline := "go run ./tests/bench/cmd/vmbench " + strings.Join(os.Args[1:], " ")
	if err := run(ctx, *kernels, env, *timeout, *out, *logPath, strings.TrimSpace(cmdline)); err != nil {
		fmt.Fprintln(os.Stderr, "vmbench:", err)
		os.Exit(1)
	}
}

func build(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func run(ctx context.Context, kernelList string, env map[string]string, timeout time.Duration, out, logPath, cmdline string) error {
	specs, err := vm.SelectKernels(kernelList)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "aegisbpf-vmbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	agentDir := filepath.Join(work, "agent")
	if err := build(ctx, "build", "-trimpath", "-o", filepath.Join(agentDir, "aegisbpf"), "./agent/cmd/aegisbpf"); err != nil {
		return err
	}
	testBin := filepath.Join(work, "vmbench.test")
	if err := build(ctx, "test", "-c", "-trimpath", "-o", testBin, "./tests/bench/vmbench"); err != nil {
		return err
	}
	cache, err := vm.CacheDir()
	if err != nil {
		return err
	}

	// The host's side of the slowdown factors, before any guest runs.
	host := vmbench.Calibrate()
	m := bench.ReadMachine(time.Now())
	r := &vmbench.Report{Date: m.Date, HostCPU: fmt.Sprintf("%s (%d CPUs), kernel %s", m.CPU, m.CPUs, m.Kernel),
		Host: *host, Command: cmdline}

	var console io.Writer = os.Stderr
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		console = io.MultiWriter(os.Stderr, f)
	}
	job := &vm.Job{Timeout: timeout, Accel: "tcg", Env: env, Trees: map[string]string{"/aegis": agentDir},
		Tests: []vm.TestBinary{{Name: "vmbench", Path: testBin, Args: []string{"-test.run=^TestVMBench$"}}}}
	for _, spec := range specs {
		k, err := vm.FetchKernel(ctx, spec, cache, os.Stderr)
		if err != nil {
			return fmt.Errorf("kernel %s: %w", spec.Name, err)
		}
		var buf bytes.Buffer
		res, err := vm.Run(ctx, k, job, work, io.MultiWriter(console, &buf))
		if err != nil {
			return fmt.Errorf("kernel %s: %w", spec.Name, err)
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("kernel %s: %w", spec.Name, err)
		}
		parsed, err := vmbench.Parse(&buf)
		if err != nil {
			return fmt.Errorf("kernel %s: %w", spec.Name, err)
		}
		r.Kernels = append(r.Kernels, vmbench.KernelRun{Name: spec.Name, Package: k.Package, Elapsed: res.Elapsed, Run: parsed})
	}
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return r.Markdown(w)
}

// unitEnvironment reads the Environment= assignments of the agent's unit,
// so that the agent runs in the guest as systemd would run it (GOMEMLIMIT).
func unitEnvironment(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the agent's unit: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment="); ok {
			for _, kv := range strings.Fields(v) {
				if !strings.Contains(kv, "=") || strings.ContainsAny(kv, `"'`) {
					return nil, fmt.Errorf("%s: Environment=%s: only plain KEY=VALUE words are understood", path, v)
				}
				out = append(out, kv)
			}
		}
	}
	return out, nil
}
