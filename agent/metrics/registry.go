package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the agent's private registry and what was registered in it.
type Registry struct {
	*prometheus.Registry
	agent   *collector
	runtime []prometheus.Collector
}

// NewRegistry returns a private registry holding the aegisbpf collector,
// which reads src at every scrape, and the Go runtime and process
// collectors (RSS, CPU, file descriptors, GOMEMLIMIT as
// go_gc_gomemlimit_bytes).
func NewRegistry(src Source, build BuildInfo) *Registry {
	r := &Registry{
		Registry: prometheus.NewRegistry(),
		agent:    newCollector(src, build),
		runtime: []prometheus.Collector{
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		},
	}
	r.MustRegister(r.agent)
	r.MustRegister(r.runtime...)
	return r
}
