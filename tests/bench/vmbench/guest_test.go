package vmbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
	"github.com/aegisbpf/aegisbpf/tests/bench/proc"
	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

type guestConfig struct {
	agent       string
	rules       []int
	runs        int
	iterations  map[string]int
	idle, flood time.Duration
	exec        []string
	agentEnv    []string
}

func readConfig(t *testing.T) guestConfig {
	t.Helper()
	c := guestConfig{agent: os.Getenv(EnvAgent), runs: 5, idle: time.Minute, flood: 10 * time.Second,
		rules: []int{1, 10, 1000, 100000}, iterations: map[string]int{OpOpen: 20000, OpConnect: 1000, OpExec: 100},
		exec: []string{"/bin/busybox", "true"}}
	if c.agent == "" {
		t.Fatalf("%s is not set: the host command puts the agent in the guest", EnvAgent)
	}
	ints := func(env string) []int {
		var out []int
		for _, s := range strings.Split(os.Getenv(env), ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want positive integers", env, os.Getenv(env))
			}
			out = append(out, n)
		}
		return out
	}
	dur := func(env string, d *time.Duration) {
		if v := os.Getenv(env); v != "" {
			var err error
			if *d, err = time.ParseDuration(v); err != nil || *d <= 0 {
				t.Fatalf("%s=%q: want a positive duration", env, v)
			}
		}
	}
	if os.Getenv(EnvRules) != "" {
		c.rules = ints(EnvRules)
	}
	if os.Getenv(EnvRuns) != "" {
		c.runs = ints(EnvRuns)[0]
	}
	if os.Getenv(EnvIterations) != "" {
		it := ints(EnvIterations)
		if len(it) != len(Ops) {
			t.Fatalf("%s: want %d counts (%s)", EnvIterations, len(Ops), strings.Join(Ops, ","))
		}
		for i, op := range Ops {
			c.iterations[op] = it[i]
		}
	}
	dur(EnvIdle, &c.idle)
	dur(EnvFlood, &c.flood)
	c.agentEnv = strings.Fields(os.Getenv(EnvAgentEnv))
	if v := os.Getenv(EnvExec); v != "" {
		c.exec = strings.Fields(v)
	}
	return c
}

// TestVMBench measures in the VM guest and prints the records the host
// command collects. It fails, rather than skipping a part, when anything
// cannot be measured.
func TestVMBench(t *testing.T) {
	testenv.RequireVM(t)
	testenv.RequireBPFLSM(t)
	c := readConfig(t)
	ctx := context.Background()
	emit := func(r Record) {
		if err := Emit(os.Stdout, r); err != nil {
			t.Fatal(err)
		}
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	maxRules := 0
	for _, n := range c.rules {
		maxRules = max(maxRules, n)
	}
	emit(Record{Setup: &Setup{Kernel: strings.TrimSpace(string(release)), CPUs: runtime.NumCPU(),
		Iterations: c.iterations, Runs: c.runs, Rules: c.rules, Mix: Mix, AgentEnv: c.agentEnv}})

	emit(Record{Calibration: Calibrate()})

	t0 := time.Now()
	tree, err := MakeTree("/bench", maxRules)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file tree for %d rules made in %s", maxRules, time.Since(t0))
	pub, priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	trust := "/bench/trust"
	pubPEM, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(trust, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trust, "bench.pub"), pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	measure := func(rules int, mode string) {
		ops := map[string]func(n int) (time.Duration, error){
			OpOpen:    func(n int) (time.Duration, error) { return OpenClose(tree.Allowed, n) },
			OpConnect: func(n int) (time.Duration, error) { return Connect(l.Port, n) },
			OpExec:    func(n int) (time.Duration, error) { return ForkExec(c.exec, n) },
		}
		if err := quiesce(); err != nil {
			t.Fatalf("%d rules, %s: %v", rules, mode, err)
		}
		runs := map[string][]time.Duration{}
		for run := -1; run < c.runs; run++ { // run -1 warms up
			for _, op := range Ops {
				n := c.iterations[op]
				if run < 0 {
					n = max(n/10, 1)
				}
				d, err := ops[op](n)
				if err != nil {
					t.Fatalf("%d rules, %s: %v", rules, mode, err)
				}
				if run >= 0 {
					runs[op] = append(runs[op], d)
				}
			}
		}
		for _, op := range Ops {
			emit(Record{Sample: &Sample{Rules: rules, Mode: mode, Op: op, Runs: runs[op]}})
		}
		t.Logf("%d rules, %s: open %s, connect %s, exec %s", rules, mode,
			Median(runs[OpOpen]), Median(runs[OpConnect]), Median(runs[OpExec]))
	}

	serial := uint64(0)
	for _, n := range c.rules {
		measure(n, ModeNone)
		for _, mode := range []string{ModeAudit, ModeEnforce} {
			serial++
			src, err := tree.Policy(n, mode, serial)
			if err != nil {
				t.Fatal(err)
			}
			polPath := filepath.Join("/bench", fmt.Sprintf("policy-%d-%s.toml", n, mode))
			sig, err := sign.Sign(priv, src, serial, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(polPath, src, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(polPath+".sig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
			probe := ""
			if mode == ModeEnforce {
				probe = tree.Denied
			}
			st := Start{Rules: n, Mode: mode}
			name := fmt.Sprintf("%d-%s", n, mode)
			a, err := StartAgent(c.agent, polPath, trust, "/sys/fs/bpf/bench-"+name, "/run/bench/"+name, probe, c.agentEnv, &st)
			if err != nil {
				t.Fatalf("%d rules, %s: %v", n, mode, err)
			}
			if err := settle(a.Pid()); err != nil {
				a.Kill()
				t.Fatalf("%d rules, %s: %v", n, mode, err)
			}
			if err := footprint(ctx, a, &st); err != nil {
				a.Kill()
				t.Fatalf("%d rules, %s: %v", n, mode, err)
			}
			measure(n, mode)
			if n == maxRules && mode == ModeAudit {
				f, err := flood(ctx, a, tree.Denied, c.flood)
				if err != nil {
					a.Kill()
					t.Fatalf("flood: %v", err)
				}
				f.Rules = n
				emit(Record{Flood: f})
			}
			if n == maxRules && mode == ModeEnforce {
				before, err := proc.CPU(a.Pid())
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(c.idle)
				after, err := proc.CPU(a.Pid())
				if err != nil {
					t.Fatal(err)
				}
				emit(Record{Idle: &Idle{Rules: n, Duration: c.idle, CPU: after - before}})
			}
			if err := a.Stop(); err != nil {
				t.Fatalf("%d rules, %s: stopping: %v\n%s", n, mode, err, a.Log())
			}
			emit(Record{Start: &st})
			t.Logf("%d rules, %s: ready in %s, deny after %s (agent CPU %s), phases %v", n, mode, st.ToReady, st.ToDeny, st.DenyCPU, st.Phases)
		}
		measure(n, ModeNone)
	}
}

// settle waits until the agent is idle (under 2% of a CPU over half a
// second): in TCG both vCPUs share one host thread, so whatever the agent
// still does after READY=1 (collecting its start-up garbage) would be
// charged to the next measurement.
func settle(pid int) error {
	return waitIdle("the agent", func() (time.Duration, error) { return proc.CPU(pid) }, 10*time.Millisecond)
}

// waitIdle polls busy, a growing CPU time, every half second until it
// grew by at most limit, for up to a minute.
func waitIdle(what string, busy func() (time.Duration, error), limit time.Duration) error {
	last, err := busy()
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		now, err := busy()
		if err != nil {
			return err
		}
		if now-last <= limit {
			return nil
		}
		last = now
	}
	return fmt.Errorf("%s was still busy after a minute", what)
}

// busyTime is the guest's non-idle CPU time in all, from /proc/stat (user,
// nice, system, irq, softirq; USER_HZ ticks of 10 ms).
func busyTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}

// quiesce waits until the whole guest is idle (at most 20 ms of CPU over
// half a second): in TCG both vCPUs share one host thread, so the kernel
// freeing the last agent's maps, or anything else running, would be
// charged to the next measurement.
func quiesce() error { return waitIdle("the guest", busyTime, 20*time.Millisecond) }

// footprint fills st with what the agent reports and uses once ready.
func footprint(ctx context.Context, a *Agent, st *Start) error {
	f, err := a.Metrics(ctx)
	if err != nil {
		return err
	}
	if Sum(f, "aegisbpf_enforcement_active") != 1 {
		return fmt.Errorf("aegisbpf_enforcement_active is not 1 once READY=1")
	}
	st.AgentTTE = time.Duration(Sum(f, "aegisbpf_time_to_enforcement_seconds") * float64(time.Second))
	st.AgentTTECPU = time.Duration(Sum(f, "aegisbpf_time_to_enforcement_cpu_seconds") * float64(time.Second))
	st.RSS = uint64(Sum(f, "process_resident_memory_bytes"))
	st.Heap = uint64(Sum(f, "go_memstats_heap_alloc_bytes"))
	if st.StartPeak, err = proc.Status(a.Pid(), "VmHWM"); err != nil {
		return err
	}
	mm, err := KernelMemory()
	if err != nil {
		return err
	}
	st.Maps = len(mm)
	for _, m := range mm {
		st.MapBytes += m.Bytes
	}
	st.LargestMaps = mm[:min(len(mm), 6)]
	st.Phases = Phases(a.Log())
	for _, p := range []string{"preflight", "verify", "resolve", "load", "fill", "attach"} {
		if _, ok := st.Phases[p]; !ok {
			return fmt.Errorf("the agent's log has no %s step:\n%s", p, a.Log())
		}
	}
	return nil
}

// flood opens path, which the audit-mode policy would block, in a loop
// for d: each open is an event through the ring buffer. One thread, so
// that the agent has the other vCPU and drops measure its pipeline, not
// its starvation. The
// agent's peak RSS is reset first (clear_refs 5), so VmHWM afterwards is
// the flood's peak.
func flood(ctx context.Context, a *Agent, path string, d time.Duration) (*Flood, error) {
	before, err := a.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	// The scrape allocates (at 100k rules it reads every rule's counters):
	// let the agent settle, then reset its peak RSS, so that VmHWM is the
	// flood's.
	if err := settle(a.Pid()); err != nil {
		return nil, err
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", a.Pid()), []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("resetting the agent's peak RSS: %w", err)
	}
	cpu0, err := proc.CPU(a.Pid())
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if _, err := OpenClose(path, 100); err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
	}
	runtime.UnlockOSThread()
	time.Sleep(time.Second) // the reader catches up
	cpu1, err := proc.CPU(a.Pid())
	if err != nil {
		return nil, err
	}
	f := &Flood{Duration: d, CPU: cpu1 - cpu0}
	if f.RSSPeak, err = proc.Status(a.Pid(), "VmHWM"); err != nil {
		return nil, err
	}
	after, err := a.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	f.HeapAfter = uint64(Sum(after, "go_memstats_heap_alloc_bytes"))
	f.Events = uint64(Sum(after, "aegisbpf_events_read_total") - Sum(before, "aegisbpf_events_read_total"))
	f.Drops = uint64(Sum(after, "aegisbpf_ringbuf_drops_total") - Sum(before, "aegisbpf_ringbuf_drops_total"))
	if f.Events == 0 {
		return nil, fmt.Errorf("the flood made no events")
	}
	return f, nil
}
