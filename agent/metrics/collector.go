package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aegisbpf/aegisbpf/agent/events"
)

// BuildInfo labels aegisbpf_build_info.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string
	BPFDigest string // sha256 of the embedded BPF objects
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("aegisbpf_"+name, help, labels, nil)
}

// collector turns a Source's Snapshot into metrics at scrape time.
type collector struct {
	src   Source
	build BuildInfo

	buildInfo, enforcing, policyInfo, policySerial, policyRules         *prometheus.Desc
	ttEnforce, ttEnforceCPU, starts, instances, takeovers, applies      *prometheus.Desc
	wdEnabled, wdTimeout, wdHealthy, wdPings, checkOK, checkFailures    *prometheus.Desc
	kernelOK, decisions, ruleDecisions, drops, unresolved               *prometheus.Desc
	mapEntries, mapCapacity, bpfStats, progRunTime, progRuns            *prometheus.Desc
	evRead, evDecodeErrs, evRunning, evLastRead, evLag, evBacklog       *prometheus.Desc
	evWakes, evEntries, evOverflow, evSinkErrs, evMaxKeys, evAggregated *prometheus.Desc
	slotOK, slotSerial, slotFloor, slotPending, slotPendingSince        *prometheus.Desc
	slotRollback, slotBad, policyNotAfter                               *prometheus.Desc
	upd                                                                 updateDescs
}

func newCollector(src Source, build BuildInfo) *collector {
	return &collector{
		src: src, build: build,

		buildInfo: desc("build_info", "Build of the running agent; always 1.",
			"version", "commit", "goversion", "bpf_objects_sha256"),
		enforcing: desc("enforcement_active",
			"1 when the agent's BPF instance is attached and pinned and its last health check passed."),
		policyInfo:   desc("policy_info", "The applied policy; always 1.", "digest", "mode"),
		policySerial: desc("policy_serial", "Serial number of the applied policy."),
		policyRules:  desc("policy_rules", "Rules in the applied policy."),
		policyNotAfter: desc("policy_signature_expiry_timestamp_seconds",
			"End of the applied policy signature's validity; the agent refuses the policy after it (at its next start). Absent for an unsigned audit-only policy."),
		ttEnforce: desc("time_to_enforcement_seconds",
			"Wall time from the agent process start to the kernel enforcing the policy."),
		ttEnforceCPU: desc("time_to_enforcement_cpu_seconds",
			"CPU time the agent process used until the kernel enforced the policy."),
		starts: desc("agent_starts_total",
			"Agent process starts since boot (kept in /run/aegisbpf): more than 1 means restarts."),
		instances: desc("instances",
			"BPF instances pinned under /sys/fs/bpf/aegisbpf (2 while one replaces another)."),
		takeovers: desc("takeovers_total",
			"Times this process took over enforcement from instances pinned by an earlier agent."),
		applies: desc("policy_applies_total", "Policies applied by this process."),

		wdEnabled: desc("watchdog_enabled", "1 when systemd's watchdog supervises the agent (WatchdogSec)."),
		wdTimeout: desc("watchdog_timeout_seconds", "systemd's watchdog timeout (WATCHDOG_USEC); pings go at half of it."),
		wdHealthy: desc("watchdog_healthy",
			"1 while every health check passes and the agent pings the watchdog; 0 means pings stopped."),
		wdPings:       desc("watchdog_pings_total", "WATCHDOG=1 notifications sent."),
		checkOK:       desc("health_check_ok", "1 when the health check passed on its last run.", "check"),
		checkFailures: desc("health_check_failures_total", "Failed runs of a health check.", "check"),

		kernelOK: desc("kernel_stats_ok",
			"1 when the kernel counters (BPF maps) were read for this scrape; 0 before enforcement or on a read error."),
		decisions: desc("decisions_total",
			"Decisions made by the BPF programs, by LSM hook and action.", "hook", "action"),
		ruleDecisions: desc("rule_decisions_total",
			"Decisions made by a policy rule: action deny (enforced) or audit (would have denied).", "rule", "action"),
		drops: desc("ringbuf_drops_total",
			"Events lost because the ring buffer was full (the decisions were still made and counted)."),
		unresolved: desc("unresolved_total",
			"Objects whose ancestry could not be walked within the bound (denied in enforce mode)."),
		mapEntries:  desc("map_entries", "Entries in a BPF map (absent when not counted).", "map"),
		mapCapacity: desc("map_capacity_entries", "Capacity (max_entries) of a BPF map.", "map"),
		bpfStats: desc("bpf_stats_enabled",
			"1 when kernel.bpf_stats_enabled is on, which the program run time metrics need."),
		progRunTime: desc("program_run_seconds_total",
			"Time the kernel spent running a BPF program (kernel.bpf_stats_enabled only).", "program"),
		progRuns: desc("program_runs_total",
			"Runs of a BPF program (kernel.bpf_stats_enabled only).", "program"),

		evRead:       desc("events_read_total", "Event records read from the ring buffer."),
		evDecodeErrs: desc("events_decode_errors_total", "Event records too short to decode."),
		evRunning:    desc("events_reader_running", "1 while the ring buffer reader goroutine runs."),
		evLastRead: desc("events_reader_last_read_timestamp_seconds",
			"When the reader last read a sampled record (sampled once per health check interval)."),
		evLag: desc("events_reader_lag_seconds",
			"Delay from the kernel's timestamp to the reader for the last sampled record."),
		evBacklog: desc("events_reader_backlog_bytes", "Bytes waiting in the ring buffer."),
		evWakes: desc("events_reader_wakeups_total",
			"Wake-ups the reader answered: proof of life while no events arrive."),
		evAggregated: desc("events_aggregated_total", "Events counted into aggregation entries."),
		evEntries: desc("events_entries_total",
			"Aggregated entries written to the sinks (identical events of an interval make one entry)."),
		evOverflow: desc("events_overflow_total",
			"Events not itemized because their interval already held the maximum of distinct entries."),
		evSinkErrs: desc("events_sink_errors_total", "Failed writes of an interval's entries to a sink.", "sink"),
		evMaxKeys:  desc("events_aggregation_max_keys", "Distinct entries kept per aggregation interval."),

		slotOK: desc("slot_state_ok",
			"1 when the slot state (/var/lib/aegisbpf/state.json) was read and is valid, 0 when it is not; absent on a host without slots."),
		slotSerial: desc("slot_active_serial", "Serial of the layer in the active slot (0: none active)."),
		slotFloor:  desc("slot_serial_floor", "The anti-rollback floor: the highest serial ever marked good."),
		slotPending: desc("slot_pending",
			"1 while a slot is switched to and not yet marked good (on probation once activated)."),
		slotPendingSince: desc("slot_pending_since_timestamp_seconds",
			"When the pending slot was switched to; absent when nothing is pending."),
		slotRollback: desc("slot_last_rollback_timestamp_seconds",
			"When the newest rollback in the slot history happened; absent when there is none."),
		slotBad: desc("slot_bad", "Slots marked bad (rolled back; never activated again until reinstalled)."),
		upd:     newUpdateDescs(),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.enforcing, c.policyInfo, c.policySerial, c.policyRules,
		c.ttEnforce, c.ttEnforceCPU, c.starts, c.instances, c.takeovers, c.applies,
		c.wdEnabled, c.wdTimeout, c.wdHealthy, c.wdPings, c.checkOK, c.checkFailures,
		c.kernelOK, c.decisions, c.ruleDecisions, c.drops, c.unresolved,
		c.mapEntries, c.mapCapacity, c.bpfStats, c.progRunTime, c.progRuns,
		c.evRead, c.evDecodeErrs, c.evRunning, c.evLastRead, c.evLag, c.evBacklog,
		c.evWakes, c.evEntries, c.evOverflow, c.evSinkErrs, c.evMaxKeys, c.evAggregated,
		c.slotOK, c.slotSerial, c.slotFloor, c.slotPending, c.slotPendingSince, c.slotRollback, c.slotBad, c.policyNotAfter,
		c.upd.ok, c.upd.current, c.upd.available, c.upd.position, c.upd.waveOpen, c.upd.channelSerial,
		c.upd.channelExpiry, c.upd.lastCheck, c.upd.lastResult, c.upd.held, c.upd.pinned, c.upd.installs, c.upd.rollbacks,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := c.build
	gauge(c.buildInfo, 1, b.Version, b.Commit, b.GoVersion, b.BPFDigest)

	a := &s.Agent
	gauge(c.enforcing, bool01(a.Enforcing))
	counter(c.starts, float64(a.Starts))
	if a.TimeToEnforcement > 0 {
		gauge(c.ttEnforce, a.TimeToEnforcement.Seconds())
		gauge(c.ttEnforceCPU, a.EnforcementCPU.Seconds())
	}
	gauge(c.wdEnabled, bool01(a.Watchdog.Enabled))
	if a.Watchdog.Enabled {
		gauge(c.wdTimeout, a.Watchdog.Timeout.Seconds())
	}
	gauge(c.wdHealthy, bool01(a.Watchdog.Healthy))
	counter(c.wdPings, float64(a.Watchdog.Pings))
	seen := map[string]bool{}
	for _, ck := range a.Checks {
		if seen[ck.Name] {
			continue
		}
		seen[ck.Name] = true
		gauge(c.checkOK, bool01(ck.OK), ck.Name)
		counter(c.checkFailures, float64(ck.Failures), ck.Name)
	}
	if e := a.Events; e != nil {
		c.collectEvents(e, gauge, counter)
	}

	k := s.Kernel
	gauge(c.kernelOK, bool01(k != nil))
	if k != nil {
		c.collectKernel(k, gauge, counter)
	}
	if s.Slots != nil || s.SlotsErr != nil {
		gauge(c.slotOK, bool01(s.Slots != nil))
	}
	if sl := s.Slots; sl != nil {
		gauge(c.slotSerial, float64(sl.ActiveSerial))
		gauge(c.slotFloor, float64(sl.Floor))
		gauge(c.slotPending, bool01(sl.Pending))
		if !sl.PendingSince.IsZero() {
			gauge(c.slotPendingSince, unixSeconds(sl.PendingSince))
		}
		if !sl.LastRollback.IsZero() {
			gauge(c.slotRollback, unixSeconds(sl.LastRollback))
		}
		gauge(c.slotBad, float64(sl.Bad))
	}
	if s.Update != nil || s.UpdateErr != nil {
		gauge(c.upd.ok, bool01(s.Update != nil))
	}
	if u := s.Update; u != nil {
		c.upd.collect(u, gauge, counter)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

type emit func(d *prometheus.Desc, v float64, labels ...string)

func (c *collector) collectEvents(e *events.Stats, gauge, counter emit) {
	r := &e.Reader
	counter(c.evRead, float64(r.Records))
	counter(c.evDecodeErrs, float64(r.DecodeErrors))
	counter(c.evWakes, float64(r.Wakes))
	gauge(c.evRunning, bool01(r.Running))
	if !r.LastRead.IsZero() {
		gauge(c.evLastRead, unixSeconds(r.LastRead))
	}
	gauge(c.evLag, r.Lag.Seconds())
	if r.Backlog >= 0 {
		gauge(c.evBacklog, float64(r.Backlog))
	}
	ag := &e.Aggregator
	counter(c.evAggregated, float64(ag.Events))
	counter(c.evEntries, float64(ag.Entries))
	counter(c.evOverflow, float64(ag.Overflow))
	gauge(c.evMaxKeys, float64(ag.MaxKeys))
	sinks := map[string]uint64{}
	for _, s := range e.Sinks {
		sinks[s.Name] += s.Errors
	}
	for name, n := range sinks {
		counter(c.evSinkErrs, float64(n), name)
	}
}

func (c *collector) collectKernel(k *Kernel, gauge, counter emit) {
	p := &k.Policy
	gauge(c.policyInfo, 1, p.Digest, p.Mode)
	gauge(c.policySerial, float64(p.Serial))
	gauge(c.policyRules, float64(p.Rules))
	if !p.NotAfter.IsZero() {
		gauge(c.policyNotAfter, unixSeconds(p.NotAfter))
	}
	gauge(c.instances, float64(k.Instances))
	counter(c.takeovers, float64(k.Takeovers))
	counter(c.applies, float64(k.Applies))
	counter(c.drops, float64(k.RingbufDrops))
	counter(c.unresolved, float64(k.Unresolved))

	// Hooks this build does not name are summed under "unknown", so that
	// a newer BPF object cannot make duplicate or unbounded series.
	type ha struct{ hook, action string }
	dec := map[ha]uint64{}
	for i, v := range k.Decisions {
		hook := unknown
		if i < int(events.HookMax)*int(events.ActionMax) {
			hook = events.HookName(uint8(i / int(events.ActionMax)))
		}
		dec[ha{hook, events.ActionName(uint8(i % int(events.ActionMax)))}] += v
	}
	for key, v := range dec {
		if key.hook == unknown && v == 0 {
			continue
		}
		counter(c.decisions, float64(v), key.hook, key.action)
	}
	type ra struct{ rule, action string }
	rules := map[ra]uint64{}
	for _, r := range k.Rules {
		if r.Denied == 0 && r.Audited == 0 {
			continue
		}
		rules[ra{r.ID, "deny"}] += r.Denied
		rules[ra{r.ID, "audit"}] += r.Audited
	}
	for key, v := range rules {
		counter(c.ruleDecisions, float64(v), key.rule, key.action)
	}
	maps := map[string]MapUsage{}
	for _, m := range k.Maps {
		maps[m.Name] = m
	}
	for name, m := range maps {
		gauge(c.mapCapacity, float64(m.Capacity), name)
		if m.Entries >= 0 {
			gauge(c.mapEntries, float64(m.Entries), name)
		}
	}
	gauge(c.bpfStats, bool01(k.BPFStatsEnabled))
	if k.BPFStatsEnabled {
		progs := map[string]ProgramStats{}
		for _, p := range k.Programs {
			progs[p.Name] = p
		}
		for name, p := range progs {
			counter(c.progRunTime, p.RunTime.Seconds(), name)
			counter(c.progRuns, float64(p.RunCount), name)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unknown is the label value of hooks and actions this build does not name.
const unknown = "unknown"
