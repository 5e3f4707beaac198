package vmbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Budgets of DESIGN.md §7 measured here.
var (
	// OpBudget is the enforce-mode overhead at 100k rules, by operation.
	OpBudget = map[string]float64{OpOpen: 1.03, OpConnect: 1.05, OpExec: 1.02}
	// OneRuleOpenBudget is open+close with a one-rule policy.
	OneRuleOpenBudget = 1.05
)

const (
	budgetToDeny        = 300 * time.Millisecond // process start to first EPERM, TCG
	budgetEnforceCPU    = 100 * time.Millisecond // CPU from exec to enforcement
	budgetApply         = 100 * time.Millisecond // 100k rules compiled and applied
	budgetIdleRSS       = 25 << 20
	budgetFloodRSS      = 40 << 20
	budgetMapsEmpty     = 20 << 20
	budgetMapsPer100k   = 10 << 20
	budgetIdleCPU       = 0.001 // fraction of one CPU
	budgetRulesForApply = 100000
)

// seedOpen is the seed's C++ implementation's open+close ratio with a
// one-rule policy in this same setup (DESIGN.md §7), by kernel name.
var seedOpen = map[string]string{"6.1": "1.14–1.17×", "6.12": "1.20–1.25×"}

// KernelRun is one kernel's boot.
type KernelRun struct {
	Name    string // the harness's short name: 6.1, 6.12
	Package string
	Elapsed time.Duration
	*Run
}

// Report is one run of the VM benchmark.
type Report struct {
	Date    time.Time
	HostCPU string
	Host    Calibration // the calibration loops on the host
	Command string
	Kernels []KernelRun
}

// ratio of a mode's median to the no-agent median; 0 when unknown.
func (k *KernelRun) ratio(rules int, mode, op string) float64 {
	base := Median(k.Runs(rules, ModeNone, op))
	m := Median(k.Runs(rules, mode, op))
	if base <= 0 || m <= 0 {
		return 0
	}
	return float64(m) / float64(base)
}

func (k *KernelRun) start(rules int, mode string) *Start {
	for i := range k.Starts {
		if k.Starts[i].Rules == rules && k.Starts[i].Mode == mode {
			return &k.Starts[i]
		}
	}
	return nil
}

func (k *KernelRun) maxRules() int { return slices.Max(k.Setup.Rules) }

func us(d time.Duration) string { return fmt.Sprintf("%.2f µs", float64(d)/1e3) }

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// tcg is the guest's slowdown against the host: register loop, mixed
// compute and syscall; 0 when unknown.
func (r *Report) tcg(k *KernelRun) (cpu, compute, sys float64) {
	f := func(guest, host time.Duration) float64 {
		if k.Calibration == nil || host <= 0 {
			return 0
		}
		return float64(guest) / float64(host)
	}
	if k.Calibration == nil {
		return 0, 0, 0
	}
	return f(k.Calibration.CPULoop, r.Host.CPULoop), f(k.Calibration.Compute, r.Host.Compute), f(k.Calibration.Syscall, r.Host.Syscall)
}

// Markdown writes the report as its section of docs/PERFORMANCE.md.
func (r *Report) Markdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## Cost to processes, start-up and footprint in the VM (no agent, audit, enforce)\n\n")
	fmt.Fprintf(b, "`%s` on %s: the kernels below booted under qemu TCG (2 vCPUs on one host thread, no KVM) "+
		"on a host with %s, each running `TestVMBench` (`tests/bench/vmbench`) with the static agent.\n\n",
		r.Command, r.Date.Format("2006-01-02 15:04 MST"), r.HostCPU)
	if len(r.Kernels) > 0 {
		k := r.Kernels[0]
		fmt.Fprintf(b, "Method: for each policy size, the three operations are timed with no agent, with the agent "+
			"in audit mode, in enforce mode, and with no agent again, all in one boot: %d runs of %d `openat`+`close` of a "+
			"file whose directory holds a protected file (the allow path that checks the name), %d TCP connects to a "+
			"listener on 127.0.0.1 (socket, connect, close with a reset), and %d fork+exec+wait of static busybox `true`, "+
			"after a warm-up run; each figure is the median time per operation, the no-agent figure the median of both "+
			"no-agent rounds, and × the ratio to it. Policies: %s. The agent runs with its unit's environment (%s). Between modes the agent is stopped and its pins "+
			"removed, so nothing enforces. TCG makes everything slower and adds noise: the slowdown factors below, "+
			"measured by the same loops on the host and in the guest, say by how much.\n\n",
			k.Setup.Runs, k.Setup.Iterations[OpOpen], k.Setup.Iterations[OpConnect], k.Setup.Iterations[OpExec], k.Setup.Mix,
			strings.Join(k.Setup.AgentEnv, " "))
	}
	fmt.Fprintf(b, "| kernel | TCG slowdown: register loop | mixed compute | getppid | boot and benchmark |\n| --- | ---: | ---: | ---: | ---: |\n")
	for i := range r.Kernels {
		k := &r.Kernels[i]
		c, m, s := r.tcg(k)
		fmt.Fprintf(b, "| %s (%s) | %.1f× | %.1f× | %.1f× | %s |\n", k.Name, k.Setup.Kernel, c, m, s, k.Elapsed.Round(time.Second))
	}
	fmt.Fprintf(b, "\nOn the host: the register loop (%d xorshift steps) %s, the mixed compute (sorting a million integers, "+
		"200k map inserts and lookups) %s, getppid %s. The host is itself a virtual machine whose system calls are "+
		"slow, so the getppid factor understates TCG; figures below that are scaled to the host use the mixed compute factor.\n\n",
		CPULoopIterations, ms(r.Host.CPULoop), ms(r.Host.Compute), us(r.Host.Syscall))

	for i := range r.Kernels {
		r.kernelMarkdown(b, &r.Kernels[i])
	}
	r.budgets(b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) kernelMarkdown(b *strings.Builder, k *KernelRun) {
	fmt.Fprintf(b, "### Kernel %s (%s)\n\n", k.Name, k.Setup.Kernel)
	fmt.Fprintf(b, "| rules | operation | no agent (before / after) | audit | × | enforce | × |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, n := range k.Setup.Rules {
		for _, op := range Ops {
			var before, after []time.Duration
			for _, s := range k.Samples {
				if s.Rules == n && s.Mode == ModeNone && s.Op == op {
					if before == nil {
						before = s.Runs
					} else {
						after = s.Runs
					}
				}
			}
			fmt.Fprintf(b, "| %d | %s | %s (%s / %s) | %s | %.3f× | %s | %.3f× |\n", n, op,
				us(Median(k.Runs(n, ModeNone, op))), us(Median(before)), us(Median(after)),
				us(Median(k.Runs(n, ModeAudit, op))), k.ratio(n, ModeAudit, op),
				us(Median(k.Runs(n, ModeEnforce, op))), k.ratio(n, ModeEnforce, op))
		}
	}
	fmt.Fprintf(b, "\nStart-up (exec of the agent to READY=1 and to the first EPERM a probe loop, started before, saw; "+
		"the agent's CPU time then; its own start-up steps from its log: *preflight* probes the kernel's "+
		"features (loading small BPF programs), *verify* reads, verifies and compiles the policy, *load* is the programs through "+
		"the verifier) and footprint once ready "+
		"(RSS and Go heap from its metrics, the RSS peak of start-up, and the kernel memory of all BPF maps: "+
		"each map's memlock as the kernel reports it; before 6.4 that is an estimate from key and value sizes that "+
		"counts the 1 MiB ring buffer as almost nothing, from 6.4 each map type's own accounting):\n\n")
	fmt.Fprintf(b, "| rules | mode | to READY | to first EPERM | agent CPU then | preflight | verify | resolve | load | fill | attach | RSS | Go heap | start-up RSS peak | maps | map memory |\n")
	fmt.Fprintf(b, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, st := range k.Starts {
		deny, cpu := "–", "–"
		if st.Mode == ModeEnforce {
			deny, cpu = ms(st.ToDeny), ms(st.DenyCPU)
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
			st.Rules, st.Mode, ms(st.ToReady), deny, cpu,
			ms(st.Phases["preflight"]), ms(st.Phases["verify"]), ms(st.Phases["resolve"]), ms(st.Phases["load"]), ms(st.Phases["fill"]), ms(st.Phases["attach"]),
			mib(st.RSS), mib(st.Heap), mib(st.StartPeak), st.Maps, mib(st.MapBytes))
	}
	if st := k.start(k.maxRules(), ModeEnforce); st != nil && len(st.LargestMaps) > 0 {
		var parts []string
		for _, m := range st.LargestMaps {
			parts = append(parts, fmt.Sprintf("`%s` (%s) %s", m.Name, m.Type, mib(m.Bytes)))
		}
		fmt.Fprintf(b, "\nThe largest maps at %d rules: %s.\n", st.Rules, strings.Join(parts, ", "))
	}
	if k.Idle != nil {
		fmt.Fprintf(b, "\nIdle, %d rules, enforce mode: agent CPU %s over %s (%.3f%% of one vCPU).\n",
			k.Idle.Rules, ms(k.Idle.CPU), k.Idle.Duration, 100*k.Idle.CPU.Seconds()/k.Idle.Duration.Seconds())
	}
	if f := k.Flood; f != nil {
		fmt.Fprintf(b, "\nEvent flood, %d rules, audit mode: one thread opening the protected probe file for %s made "+
			"%d events (%.0f/s) read by the agent, %d dropped; agent CPU %.1f%% of one vCPU, RSS peak during the flood "+
			"%s, Go heap after it and a metrics scrape %s.\n", f.Rules, f.Duration, f.Events, float64(f.Events)/f.Duration.Seconds(), f.Drops,
			100*f.CPU.Seconds()/f.Duration.Seconds(), mib(f.RSSPeak), mib(f.HeapAfter))
	}
	fmt.Fprintln(b)
}

// budgets writes the DESIGN.md §7 budgets this benchmark measures, for
// each kernel, with the seed's figures where it has them.
func (r *Report) budgets(b *strings.Builder) {
	fmt.Fprintf(b, "### Budgets (DESIGN.md §7)\n\n| budget | kernel | measured | met | seed (C++) |\n| --- | --- | --- | --- | --- |\n")
	for i := range r.Kernels {
		k := &r.Kernels[i]
		top := k.maxRules()
		for _, op := range Ops {
			x := k.ratio(top, ModeEnforce, op)
			fmt.Fprintf(b, "| %s overhead, enforce, %d rules ≤ %.2f× | %s | %.3f× | %s | |\n",
				op, top, OpBudget[op], k.Name, x, yes(x > 0 && x <= OpBudget[op] && top >= budgetRulesForApply))
		}
		if slices.Contains(k.Setup.Rules, 1) {
			x := k.ratio(1, ModeEnforce, OpOpen)
			fmt.Fprintf(b, "| open+close, one-rule policy ≤ %.2f× | %s | %.3f× | %s | %s |\n",
				OneRuleOpenBudget, k.Name, x, yes(x > 0 && x <= OneRuleOpenBudget), seedOpen[k.Name])
		}
		_, c, _ := r.tcg(k)
		if st := k.start(top, ModeEnforce); st != nil {
			fmt.Fprintf(b, "| process start to first EPERM in the TCG VM ≤ 0.3 s (%d rules) | %s | %s | %s | 1.2–1.5 s |\n",
				top, k.Name, ms(st.ToDeny), yes(st.ToDeny <= budgetToDeny))
			fmt.Fprintf(b, "| exec to enforcement ≤ 100 ms of CPU (%d rules) | %s | %s in TCG, about %s at the compute factor %.0f× | %s | |\n",
				top, k.Name, ms(st.DenyCPU), ms(time.Duration(float64(st.DenyCPU)/max(c, 1))), c,
				yes(float64(st.DenyCPU)/max(c, 1) <= float64(budgetEnforceCPU)))
			if top >= budgetRulesForApply {
				apply := st.Phases["fill"]
				fmt.Fprintf(b, "| policy load: 100k rules compiled and applied ≤ 100 ms | %s | map fill %s in TCG (about %s at %.0f×), plus compile (host: `make bench-go`, BenchmarkCompile100k); parse, verify and path resolution add %s in TCG | %s | |\n",
					k.Name, ms(apply), ms(time.Duration(float64(apply)/max(c, 1))), c,
					ms(st.Phases["verify"]+st.Phases["resolve"]), yes(float64(apply)/max(c, 1) <= float64(budgetApply)))
			}
			if small := k.start(1, ModeEnforce); small != nil {
				fmt.Fprintf(b, "| agent RSS ≤ 25 MB idle | %s | %s with 1 rule, %s with %d | %s | |\n",
					k.Name, mib(small.RSS), mib(st.RSS), top, yes(small.RSS <= budgetIdleRSS))
				fmt.Fprintf(b, "| kernel memory ≤ 20 MB with an empty policy | %s | %s (1 rule, %d maps) | %s | |\n",
					k.Name, mib(small.MapBytes), small.Maps, yes(small.MapBytes <= budgetMapsEmpty))
				if top >= budgetRulesForApply {
					per := float64(st.MapBytes-small.MapBytes) * 100000 / float64(top-1)
					fmt.Fprintf(b, "| kernel memory ≤ 10 MB more per 100k rules | %s | %s per 100k rules | %s | |\n",
						k.Name, mib(uint64(per)), yes(per <= budgetMapsPer100k))
				}
			}
		}
		if f := k.Flood; f != nil {
			fmt.Fprintf(b, "| agent RSS ≤ 40 MB under an event flood | %s | %s at %.0f events/s | %s | |\n",
				k.Name, mib(f.RSSPeak), float64(f.Events)/f.Duration.Seconds(), yes(f.RSSPeak <= budgetFloodRSS))
		}
		if id := k.Idle; id != nil {
			frac := id.CPU.Seconds() / id.Duration.Seconds()
			fmt.Fprintf(b, "| agent CPU < 0.1%% idle | %s | %.3f%% in TCG (%d rules) | %s | |\n",
				k.Name, 100*frac, id.Rules, yes(frac < budgetIdleCPU))
		}
	}
	fmt.Fprintln(b)
}
