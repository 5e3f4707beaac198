package vmbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Marker starts every record line the guest prints.
const Marker = "AEGISBENCH "

// Environment the host command (tests/bench/cmd/vmbench) sets in the guest.
const (
	EnvAgent      = "AEGISBPF_TEST_AGENT" // the static aegisbpf binary
	EnvRules      = "AEGISBPF_BENCH_RULES"
	EnvRuns       = "AEGISBPF_BENCH_RUNS"
	EnvIterations = "AEGISBPF_BENCH_ITERATIONS" // open,connect,exec per run
	EnvIdle       = "AEGISBPF_BENCH_IDLE"
	EnvFlood      = "AEGISBPF_BENCH_FLOOD"
	EnvExec       = "AEGISBPF_BENCH_EXEC" // the static binary fork+exec runs
	// EnvAgentEnv is the agent's environment from its unit's Environment=
	// lines, separated by spaces (GOMEMLIMIT=64MiB).
	EnvAgentEnv = "AEGISBPF_BENCH_AGENT_ENV"
)

// Modes of one rule count's group, in the order they are measured: no
// agent, the agent in audit mode, in enforce mode, no agent again (the
// baseline is both no-agent rounds, so that drift shows).
const (
	ModeNone    = "none"
	ModeAudit   = "audit"
	ModeEnforce = "enforce"
)

// Sample is the time per operation of each run of one operation in one
// configuration.
type Sample struct {
	Rules int             `json:"rules"`
	Mode  string          `json:"mode"`
	Op    string          `json:"op"`
	Runs  []time.Duration `json:"runs"`
}

// Start is one start of the agent.
type Start struct {
	Rules int    `json:"rules"`
	Mode  string `json:"mode"`
	// ToReady is from the agent's exec to READY=1 on the notify socket.
	ToReady time.Duration `json:"to_ready"`
	// ToDeny is from the agent's exec to the first EPERM the probe saw
	// (enforce mode only), and DenyCPU the agent's CPU time then.
	ToDeny  time.Duration `json:"to_deny"`
	DenyCPU time.Duration `json:"deny_cpu"`
	// Agent's own figures (aegisbpf_time_to_enforcement_seconds and
	// _cpu_seconds): from its process start to enforcement.
	AgentTTE    time.Duration `json:"agent_tte"`
	AgentTTECPU time.Duration `json:"agent_tte_cpu"`
	// Phases from the agent's log: verify (read, parse, verify, compile),
	// resolve (the paths), load (programs), fill (maps), attach.
	Phases map[string]time.Duration `json:"phases"`
	// Memory once ready: RSS and the Go heap (process_resident_memory_bytes,
	// go_memstats_heap_alloc_bytes), and the kernel memory of the agent's
	// maps (the memlock of each map's fdinfo, ring buffer included).
	RSS uint64 `json:"rss"`
	// StartPeak is the RSS peak (VmHWM) of start-up: parsing the policy.
	StartPeak   uint64      `json:"start_peak"`
	Heap        uint64      `json:"heap"`
	MapBytes    uint64      `json:"map_bytes"`
	Maps        int         `json:"maps"`
	LargestMaps []MapMemory `json:"largest_maps"`
}

// Idle is the agent's CPU over a quiet minute.
type Idle struct {
	Rules    int           `json:"rules"`
	Duration time.Duration `json:"duration"`
	CPU      time.Duration `json:"cpu"`
}

// Flood is the agent under a stream of audit events.
type Flood struct {
	Rules     int           `json:"rules"`
	Duration  time.Duration `json:"duration"`
	Events    uint64        `json:"events"` // read by the agent's reader
	Drops     uint64        `json:"drops"`
	CPU       time.Duration `json:"cpu"`
	RSSPeak   uint64        `json:"rss_peak"` // VmHWM
	HeapAfter uint64        `json:"heap_after"`
}

// Calibration is the guest's side of the slowdown factors.
type Calibration struct {
	CPULoop time.Duration `json:"cpu_loop"` // CPULoop, median
	Compute time.Duration `json:"compute"`  // Compute, median
	Syscall time.Duration `json:"syscall"`  // SyscallLoop per call, median
}

// Setup says what the guest measured with.
type Setup struct {
	Kernel     string         `json:"kernel"`
	CPUs       int            `json:"cpus"`
	Iterations map[string]int `json:"iterations"` // per run, by operation
	Runs       int            `json:"runs"`
	Rules      []int          `json:"rules"`
	Mix        string         `json:"mix"` // what a policy of N rules holds
	AgentEnv   []string       `json:"agent_env"`
}

// Record is one line after Marker: exactly one field is set.
type Record struct {
	Setup       *Setup       `json:"setup,omitempty"`
	Sample      *Sample      `json:"sample,omitempty"`
	Start       *Start       `json:"start,omitempty"`
	Idle        *Idle        `json:"idle,omitempty"`
	Flood       *Flood       `json:"flood,omitempty"`
	Calibration *Calibration `json:"calibration,omitempty"`
}

// Emit writes r as one record line.
func Emit(w io.Writer, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", Marker, b)
	return err
}

// Run is everything one boot measured.
type Run struct {
	Setup       Setup
	Samples     []Sample
	Starts      []Start
	Idle        *Idle
	Flood       *Flood
	Calibration *Calibration
}

// Parse collects the records in console output (lines may carry a prefix
// before Marker). A record line that does not decode is an error naming
// its line.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	setup := false
	for n := 1; sc.Scan(); n++ {
		i := strings.Index(sc.Text(), Marker)
		if i < 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal([]byte(strings.TrimSpace(sc.Text()[i+len(Marker):])), &rec); err != nil {
			return nil, fmt.Errorf("line %d: bad record: %w", n, err)
		}
		switch {
		case rec.Setup != nil:
			run.Setup, setup = *rec.Setup, true
		case rec.Sample != nil:
			run.Samples = append(run.Samples, *rec.Sample)
		case rec.Start != nil:
			run.Starts = append(run.Starts, *rec.Start)
		case rec.Idle != nil:
			run.Idle = rec.Idle
		case rec.Flood != nil:
			run.Flood = rec.Flood
		case rec.Calibration != nil:
			run.Calibration = rec.Calibration
		default:
			return nil, fmt.Errorf("line %d: empty record", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !setup {
		return nil, fmt.Errorf("no %q setup record: the guest benchmark did not run", strings.TrimSpace(Marker))
	}
	return run, nil
}

// Runs returns the runs of op in mode at rules, all no-agent rounds
// together.
func (r *Run) Runs(rules int, mode, op string) []time.Duration {
	var out []time.Duration
	for _, s := range r.Samples {
		if s.Rules == rules && s.Mode == mode && s.Op == op {
			out = append(out, s.Runs...)
		}
	}
	return out
}
