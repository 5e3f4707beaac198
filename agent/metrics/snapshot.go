package metrics

import (
	"time"

	"github.com/aegisbpf/aegisbpf/agent/events"
)

// Source is what the collector reads at every scrape. Snapshot is called
// from the HTTP server's goroutines, possibly concurrently, and should
// return within the scrape timeout.
type Source interface {
	Snapshot() Snapshot
}

// Snapshot is the state of the agent at one scrape.
type Snapshot struct {
	// Kernel is nil before enforcement started, or when reading the kernel
	// counters failed (KernelErr).
	Kernel    *Kernel
	KernelErr error
	Agent     Agent
	// Slots is the A/B slot state, nil on a host without slots or when
	// reading it failed (SlotsErr).
	Slots    *Slots
	SlotsErr error
	// Update is the fleet updater's state, nil on a host without one or
	// when reading it failed (UpdateErr).
	Update    *Update
	UpdateErr error
}

// Update is the fleet updater's state (agent/update) read at each scrape.
type Update struct {
	Current string
	// Available is the newest release offered above Current ("" none),
	// Position this host's place in its rollout, WaveOpen whether its
	// wave has opened.
	Available      string
	Position       float64
	WaveOpen       bool
	ChannelSerial  uint64
	ChannelExpires time.Time // zero before the first channel accepted
	LastCheck      time.Time // zero before the first check
	LastResult     string
	Held           bool
	Pin            string
	Releases       []UpdateRelease
}

// UpdateRelease is what the updater did with one release.
type UpdateRelease struct {
	Version   string
	Installs  uint64
	Rollbacks uint64
}

// Slots is the slot state the agent reads from state.json at each scrape.
type Slots struct {
	ActiveSerial uint64
	Floor        uint64
	Pending      bool
	PendingSince time.Time // zero when unknown
	LastRollback time.Time // zero when none
	Bad          int
}

// Kernel is what the enforcer reads from its BPF maps, the pins and the
// kernel.
type Kernel struct {
	Policy Policy
	// Decisions holds the decisions map summed over CPUs:
	// Decisions[hook*events.ActionMax+action].
	Decisions []uint64
	// Rules holds the per-rule counters (rule_counters summed over CPUs),
	// by rule id. Rules with both counters zero may be left out.
	Rules        []RuleCounters
	RingbufDrops uint64 // stats[AEGIS_STAT_RINGBUF_DROPS]
	Unresolved   uint64 // stats[AEGIS_STAT_UNRESOLVED]
	Maps         []MapUsage
	// Instances is the number of instances pinned now (2 during a
	// make-before-break switch).
	Instances int
	// Takeovers counts the times this process took over enforcement from
	// instances pinned by an earlier agent.
	Takeovers uint64
	// Applies counts the policies this process applied.
	Applies uint64
	// BPFStatsEnabled is kernel.bpf_stats_enabled.
	BPFStatsEnabled bool
	// Programs lists the attached programs; their run time and count are
	// exported only when BPFStatsEnabled.
	Programs []ProgramStats
}

// Policy identifies the applied policy.
type Policy struct {
	Digest string // sha256 of the policy, hex
	Serial uint64
	Mode   string // enforce or audit
	Rules  int
	// NotAfter is the end of the policy signature's validity; zero for
	// an unsigned (audit-only) policy.
	NotAfter time.Time
}

// RuleCounters are one rule's decision counts.
type RuleCounters struct {
	ID      string
	Denied  uint64
	Audited uint64
}

// MapUsage is one BPF map's fill.
type MapUsage struct {
	Name string
	// Entries is the number of entries, -1 when not counted (arrays are
	// always full; counting a large hash map costs a walk).
	Entries  int64
	Capacity uint64 // max_entries
}

// ProgramStats are one program's kernel.bpf_stats_enabled counters.
type ProgramStats struct {
	Name     string
	RunTime  time.Duration
	RunCount uint64
}

// Agent is the daemon's own state.
type Agent struct {
	// Enforcing: the instance is attached and its last health check passed.
	Enforcing bool
	// Starts counts agent process starts since boot.
	Starts uint64
	// TimeToEnforcement is from process start to the kernel enforcing;
	// EnforcementCPU the CPU time the process used until then.
	TimeToEnforcement time.Duration
	EnforcementCPU    time.Duration
	Watchdog          Watchdog
	Checks            []Check
	// Events is nil before the event pipeline starts.
	Events *events.Stats
}

// Watchdog is the systemd watchdog state.
type Watchdog struct {
	Enabled bool
	Timeout time.Duration // WATCHDOG_USEC
	Healthy bool          // the last health checks all passed: pinging
	Pings   uint64
}

// Check is one health check's state.
type Check struct {
	Name     string // bounded: a fixed set of checks
	OK       bool
	Failures uint64
}
