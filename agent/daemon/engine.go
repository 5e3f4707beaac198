package daemon

import (
	"context"

	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

// Enforcer puts the policy into the kernel and keeps it there.
type Enforcer interface {
	// Start runs preflight, loads the BPF objects, fills the maps, attaches
	// and pins the links. It returns nil only once the kernel enforces the
	// policy, and otherwise an error saying why, leaving any previously
	// pinned instance enforcing. It should return promptly when ctx ends.
	Start(ctx context.Context) error
	// Health returns nil while enforcement is intact: every link attached
	// and pinned, the policy generation the one applied. It is called every
	// watchdog round (seconds apart) and must not block for long: a call
	// that has not returned within half a round counts as a failure.
	Health() error
	// Close releases this process's descriptors. The pinned links stay
	// attached: enforcement continues without the process.
	Close() error
}

// EventSource gives access to the started enforcer's events.
type EventSource interface {
	// Events opens a reader of the event ring buffer, e.g.
	// events.OpenRingbuf(instance.Map(bpf.AegisMapEvents)). Called once,
	// after Start; Run closes the reader.
	Events() (events.RecordReader, error)
	// Rules returns the rule ids of the applied policy, by rule index.
	Rules() []string
}

// KernelStats reads the kernel-side counters for metrics.
type KernelStats interface {
	// KernelStats reads the BPF maps and pins. It is called at every
	// scrape, possibly concurrently, and only after Start returned nil.
	KernelStats() (*metrics.Kernel, error)
}

// Engine is what Run needs of the enforcement engine.
type Engine interface {
	Enforcer
	EventSource
	KernelStats
}
