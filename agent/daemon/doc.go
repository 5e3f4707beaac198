// Package daemon runs the agent under systemd: it starts enforcement
// through an Engine, says READY=1 only once the kernel enforces, feeds the
// watchdog only while every health check passes, serves metrics, writes
// events to the journal, and at shutdown leaves the pinned BPF links in
// place so that enforcement continues without the process.
//
// Lifecycle of Run:
//
//	metrics listeners (socket activation or --metrics-listen), server up
//	STATUS=starting      Engine.Start (preflight, load, fill, attach, pin)
//	                     a failure ends Run with a one-line error; no READY
//	READY=1 + STATUS     the event pipeline runs; the watchdog loop starts
//	WATCHDOG=1           every WATCHDOG_USEC/2 while Engine.Health and the
//	                     event reader's check pass; on a failure STATUS says
//	                     why and pings stop, so systemd's watchdog restarts
//	                     the agent; pings resume when the checks pass again
//	STOPPING=1           on the first SIGTERM/SIGINT (or ctx): metrics server
//	                     shut down, event reader drained, Engine.Close (the
//	                     pins stay). A second signal exits at once (130).
//
// The event reader check does not expect events (none is normal): it
// wakes the reader each round and expects it to answer or to have read
// records since (events.Stream.Check).
//
// Side effects beyond notifications live in the state directory
// (/run/aegisbpf): a start counter (restarts since boot, for metrics) and
// status.json, which `aegisbpf status` reads.
package daemon
