// Package metrics exposes the agent's Prometheus metrics: a private
// registry (never the global one) holding a collector that reads a Source
// at scrape time, so kernel counters (per-CPU BPF maps) are read when asked
// for and never polled; plus build information, the Go runtime and the
// process (RSS, file descriptors). Labels are bounded: hooks, actions, map
// and program names are fixed sets, rule ids are bounded by the policy.
//
// docs/METRICS.md is generated from the registry (WriteReference); a test
// fails when it is stale (go test ./agent/metrics -run TestReference -update).
//
// The HTTP side serves /metrics on listeners from systemd socket activation
// (FileDescriptorName=metrics) or from a --metrics-listen spec (Listen):
// a unix socket or loopback TCP only.
package metrics
