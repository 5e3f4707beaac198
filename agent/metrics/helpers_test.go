package metrics

import (
	"errors"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/events"
)

// staticSource returns a fixed snapshot.
type staticSource Snapshot

func (s staticSource) Snapshot() Snapshot { return Snapshot(s) }

// referenceSnapshot has every aegisbpf metric present: the reference and
// the exposition tests are built from it.
func referenceSnapshot() Snapshot {
	dec := make([]uint64, int(events.HookMax)*int(events.ActionMax))
	dec[int(events.HookFileOpen)*int(events.ActionMax)+int(events.ActionDeny)] = 7
	dec[int(events.HookExec)*int(events.ActionMax)+int(events.ActionAudit)] = 3
	dec[15*int(events.ActionMax)+int(events.ActionDeny)] = 1 // a hook this build does not name
	return Snapshot{
		Kernel: &Kernel{
			Policy: Policy{Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Serial: 42, Mode: "enforce", Rules: 3,
				NotAfter: time.Unix(1800000000, 0)},
			Decisions: dec,
			Rules: []RuleCounters{
				{ID: "protect-shadow", Denied: 7},
				{ID: "audit-nc", Audited: 3},
				{ID: "never-hit"},
			},
			RingbufDrops: 2, Unresolved: 1,
			Maps: []MapUsage{
				{Name: "inode_rules", Entries: 12, Capacity: 12},
				{Name: "decisions", Entries: -1, Capacity: 32},
			},
			Instances: 1, Takeovers: 1, Applies: 1,
			BPFStatsEnabled: true,
			Programs:        []ProgramStats{{Name: "aegis_file_open", RunTime: 1500 * time.Microsecond, RunCount: 12000}},
		},
		Agent: Agent{
			Enforcing: true, Starts: 2,
			TimeToEnforcement: 80 * time.Millisecond, EnforcementCPU: 30 * time.Millisecond,
			Watchdog: Watchdog{Enabled: true, Timeout: 10 * time.Second, Healthy: true, Pings: 12},
			Checks:   []Check{{Name: "enforcer", OK: true}, {Name: "events", OK: false, Failures: 1}},
			Events: &events.Stats{
				Reader: events.ReaderStats{Running: true, Records: 10, Wakes: 5, DecodeErrors: 0,
					LastRead: time.Unix(1700000000, 0), Lag: 2 * time.Millisecond, Backlog: 0},
				Aggregator: events.AggregatorStats{Events: 10, Entries: 2, Overflow: 0, Flushes: 3, MaxKeys: 2048},
				Sinks:      []events.SinkStats{{Name: "journal"}, {Name: "json", Errors: 1}},
			},
		},
		Slots: &Slots{ActiveSerial: 3, Floor: 2, Pending: true, PendingSince: time.Unix(1700000100, 0),
			LastRollback: time.Unix(1700000000, 0), Bad: 1},
		Update: &Update{Current: "1.1.0", Available: "1.2.0", Position: 0.0421, WaveOpen: true,
			ChannelSerial: 7, ChannelExpires: time.Unix(1700600000, 0), LastCheck: time.Unix(1700000200, 0),
			LastResult: "available", Held: false, Pin: "1.2.0",
			Releases: []UpdateRelease{{Version: "1.1.0", Installs: 1}, {Version: "1.0.9", Installs: 1, Rollbacks: 1}}},
	}
}

var errRead = errors.New("reading map decisions: operation not permitted")

var buildInfo = BuildInfo{Version: "v0.0.0-test", Commit: "abc", GoVersion: "go1.26", BPFDigest: "00ff"}
