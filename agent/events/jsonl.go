package events

import (
	"encoding/json"
	"fmt"
	"io"
)

// JSONSink writes each entry of a batch, and its overflow summary, as one
// JSON object per line (Record) to a writer. It is used by one goroutine at
// a time.
type JSONSink struct {
	enc *json.Encoder
}

// NewJSONSink returns a sink writing JSON lines to w.
func NewJSONSink(w io.Writer) *JSONSink {
	return &JSONSink{enc: json.NewEncoder(w)}
}

// Name implements Sink.
func (*JSONSink) Name() string { return "json" }

// Write implements Sink.
func (s *JSONSink) Write(b *Batch) error {
	for i := range b.Entries {
		r := RecordOf(b, &b.Entries[i])
		if err := s.enc.Encode(&r); err != nil {
			return fmt.Errorf("writing event JSON: %w", err)
		}
	}
	if r, ok := OverflowRecord(b); ok {
		if err := s.enc.Encode(&r); err != nil {
			return fmt.Errorf("writing event JSON: %w", err)
		}
	}
	return nil
}
