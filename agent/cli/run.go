package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/aegisbpf/aegisbpf/agent/buildinfo"
	"github.com/aegisbpf/aegisbpf/agent/daemon"
	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/policy"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Defaults of aegisbpf run on a host.
const (
	defaultPolicyPath = "/usr/share/aegisbpf/policy.toml"
)

func runCommand() *Command {
	return &Command{Name: "run", Summary: "enforce the policy and serve systemd, metrics and events", Run: runAgent}
}

func runAgent(ctx context.Context, env *Env, args []string) error {
	var cfg daemon.Config
	fs := NewFlagSet(env, "run", "aegisbpf run [flags]")
	cfg.RegisterFlags(fs, env.Stdout)
	pe := &policyEngine{log: env}
	fs.StringVar(&pe.policyPath, "policy", defaultPolicyPath, "policy file; its signature is POLICY.sig")
	fs.StringVar(&pe.keysDir, "keys", defaultTrustedKeys, "directory of trusted public keys")
	fs.StringVar(&pe.engine.Root, "bpffs-root", engine.DefaultRoot, "where instances are pinned")
	slotsDir := fs.String("slots-dir", slot.DefaultDir, "the A/B slot state the metrics report (empty: none)")
	updateDir := fs.String("update-dir", update.DefaultDir, "the fleet updater's state the metrics report (empty: none)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return Usagef("run takes no arguments")
	}
	pe.engine.Log = env.Log
	if *slotsDir != "" {
		cfg.Slots = slotMetrics(*slotsDir)
	}
	if *updateDir != "" {
		cfg.Update = update.MetricsReader(*updateDir)
	}
	pe.stateDir = cfg.StateDir
	cfg.Log = env.Log
	cfg.Build = metrics.BuildInfo{Version: buildinfo.Version, Commit: buildinfo.Commit, GoVersion: runtime.Version(), BPFDigest: buildinfo.BPFDigest()}
	return daemon.Run(ctx, cfg, pe)
}

// slotMetrics reads the slot state of dir for each scrape.
func slotMetrics(dir string) func() (*metrics.Slots, error) {
	return func() (*metrics.Slots, error) {
		sum, ok, err := slot.ReadSummary(dir)
		if !ok || err != nil {
			return nil, err
		}
		return &metrics.Slots{ActiveSerial: sum.ActiveSerial, Floor: sum.Floor, Pending: sum.Pending,
			PendingSince: sum.PendingSince, LastRollback: sum.LastRollback, Bad: sum.Bad}, nil
	}
}

// policyEngine is the daemon's Engine: the verified policy applied through
// agent/engine.
type policyEngine struct {
	log        *Env
	policyPath string
	keysDir    string
	stateDir   string
	engine     engine.Engine

	mu        sync.Mutex
	inst      *engine.Instance
	compiled  *policy.Compiled
	notAfter  time.Time // the policy signature's end of validity; zero when unsigned
	takeovers atomic.Uint64
	applies   atomic.Uint64
}

func (p *policyEngine) Start(ctx context.Context) error {
	t0 := time.Now()
	defer func() { p.log.Log.Info("start steps", "total", time.Since(t0)) }()
	if err := engine.PreflightErr(engine.Preflight(filepath.Dir(p.engine.Root))); err != nil {
		return err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lifting the memlock limit: %w", err)
	}
	preflight := time.Since(t0)
	var ring keys.Ring
	if r, err := keys.LoadRing(p.keysDir); err == nil {
		ring = r
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	last := p.lastSerial()
	loaded, err := policy.LoadVerified(p.policyPath, "", ring, time.Now(), last)
	if err != nil {
		return err
	}
	for _, w := range loaded.Warnings {
		p.log.Log.Warn("policy", "warning", w)
	}
	c := loaded.Compiled
	p.log.Log.Info("policy verified", "serial", c.Serial, "digest", c.Digest, "preflight", preflight, "after", time.Since(t0))
	spec, unsupported := engine.FromPolicy(c)
	if len(unsupported) > 0 {
		p.log.Log.Warn("policy rules not enforced by this agent version", "rules", strings.Join(unsupported, ","))
	}
	rs, err := engine.Resolve(spec, engine.HostFS)
	if err != nil {
		return err
	}
	for _, w := range rs.Warnings {
		p.log.Log.Warn("policy resolution", "warning", w)
	}
	p.log.Log.Info("policy resolved", "entries", rs.String(), "after", time.Since(t0))
	if before, _ := p.engine.List(); len(before) > 0 {
		p.takeovers.Add(1)
	}
	inst, err := p.engine.Apply(rs)
	if inst == nil {
		return err
	}
	if err != nil {
		p.log.Log.Warn("applying policy", "err", err)
	}
	p.applies.Add(1)
	p.mu.Lock()
	p.inst, p.compiled = inst, c
	p.notAfter = time.Time{}
	if loaded.Signature != nil {
		p.notAfter = loaded.Signature.NotAfterTime()
	}
	p.mu.Unlock()
	p.saveSerial(c.Serial)
	return nil
}

func (p *policyEngine) lastSerial() uint64 {
	if p.stateDir == "" {
		return 0
	}
	n, err := daemon.ReadPolicySerial(p.stateDir)
	if err != nil {
		p.log.Log.Warn("ignoring an unreadable last-serial file", "err", err)
		return 0
	}
	return n
}

func (p *policyEngine) saveSerial(serial uint64) {
	if p.stateDir == "" {
		return
	}
	if err := daemon.WritePolicySerial(p.stateDir, serial); err != nil {
		p.log.Log.Warn("recording the policy serial", "err", err)
	}
}

func (p *policyEngine) instance() (*engine.Instance, *policy.Compiled) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inst, p.compiled
}

func (p *policyEngine) signatureEnd() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notAfter
}

func (p *policyEngine) Health() error {
	inst, _ := p.instance()
	if inst == nil {
		return errors.New("no instance applied")
	}
	return inst.Health()
}

func (p *policyEngine) Close() error {
	inst, _ := p.instance()
	if inst != nil {
		return inst.Close()
	}
	return nil
}

func (p *policyEngine) Events() (events.RecordReader, error) {
	inst, _ := p.instance()
	if inst == nil {
		return nil, errors.New("no instance applied")
	}
	return events.OpenRingbuf(inst.Map(bpf.AegisMapEvents))
}

func (p *policyEngine) Rules() []string {
	_, c := p.instance()
	if c == nil {
		return nil
	}
	return c.IDs()
}

func (p *policyEngine) KernelStats() (*metrics.Kernel, error) {
	inst, c := p.instance()
	if inst == nil {
		return nil, errors.New("no instance applied")
	}
	k := &metrics.Kernel{
		Policy: metrics.Policy{Digest: c.Digest, Serial: c.Serial, Mode: c.Mode.String(), Rules: len(c.Rules),
			NotAfter: p.signatureEnd()},
		Takeovers: p.takeovers.Load(),
		Applies:   p.applies.Load(),
	}
	ids, _ := p.engine.List()
	k.Instances = len(ids)
	for i := uint32(0); i < uint32(events.HookMax)*uint32(events.ActionMax); i++ {
		v, err := perCPUSum(inst, bpf.AegisMapDecisions, i)
		if err != nil {
			return nil, err
		}
		k.Decisions = append(k.Decisions, v)
	}
	var err error
	if k.RingbufDrops, err = perCPUSum(inst, bpf.AegisMapStats, 0); err != nil {
		return nil, err
	}
	if k.Unresolved, err = perCPUSum(inst, bpf.AegisMapStats, 1); err != nil {
		return nil, err
	}
	var per []bpf.AegisRuleCounter
	for i, id := range c.IDs() {
		if err := inst.Map(bpf.AegisMapRuleCounters).Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("reading rule counters: %w", err)
		}
		rc := metrics.RuleCounters{ID: id}
		for _, v := range per {
			rc.Denied += v.Denied
			rc.Audited += v.Audited
		}
		k.Rules = append(k.Rules, rc)
	}
	sizes := inst.Rules.Sizes()
	for name, n := range sizes {
		m := inst.Map(name)
		if m == nil {
			continue
		}
		k.Maps = append(k.Maps, metrics.MapUsage{Name: name, Entries: int64(n), Capacity: uint64(m.MaxEntries())})
	}
	if data, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled"); err == nil {
		k.BPFStatsEnabled = strings.TrimSpace(string(data)) == "1"
	}
	for _, name := range inst.Programs() {
		ps := metrics.ProgramStats{Name: name}
		if prog := inst.Program(name); prog != nil && k.BPFStatsEnabled {
			if st, err := prog.Stats(); err == nil {
				ps.RunTime, ps.RunCount = st.Runtime, st.RunCount
			}
		}
		k.Programs = append(k.Programs, ps)
	}
	return k, nil
}

func perCPUSum(inst *engine.Instance, name string, key uint32) (uint64, error) {
	v, err := engine.SumPerCPU(inst.Map(name), key)
	if err != nil {
		return 0, fmt.Errorf("reading %s[%d]: %w", name, key, err)
	}
	return v, nil
}
