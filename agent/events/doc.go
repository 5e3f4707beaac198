// Package events turns the kernel's ring buffer records into operator
// output: it decodes each record (Decode), folds identical events of an
// interval into one entry with a count (Aggregator), and writes each
// interval's entries to sinks: the systemd journal (JournalSink) and JSON
// lines (JSONSink).
//
// The hot path, from a raw record to a counted aggregation entry, allocates
// nothing: Decode fills a caller's bpf.AegisEvent, the Aggregator keeps two
// pre-sized tables and swaps them each interval. Strings are made only when
// an interval's entries are written, and those are bounded by the table
// size (MaxKeys), whatever the event rate.
//
// A Stream reads records from a RecordReader (a cilium ringbuf.Reader through
// Ringbuf, or a fake in tests) on one goroutine and tracks its progress, so
// that the daemon's watchdog can tell an idle reader (normal: no events)
// from a dead or stuck one. Pipeline ties a Stream, an Aggregator and the
// sinks together for the daemon.
//
// Journal entries carry MESSAGE_ID=MessageID (aggregated events) or
// MessageIDOverflow (a summary of events that did not fit the table); see
// docs/METRICS.md for the counters beside them and `aegisbpf events` to read
// them back.
package events
