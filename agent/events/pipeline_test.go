package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestPipeline(t *testing.T) {
	t.Run("a flood becomes one entry with an exact count", func(t *testing.T) {
		r := newFakeReader(1024)
		sink := &memSink{}
		p := NewPipeline(PipelineConfig{
			Reader: r, Sinks: []Sink{sink}, Interval: time.Hour,
			Rules: func() []string { return []string{"protect-shadow"} },
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		ev := sample("cat", "/etc/shadow", uint64(BootClock()))
		raw := encode(&ev)
		for range 100000 {
			r.ch <- raw
		}
		cancel() // the last interval is written at shutdown, after draining
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		recs := sink.snapshot()
		if len(recs) != 1 || recs[0].Count != 100000 || recs[0].Rule != "protect-shadow" {
			t.Fatalf("records = %+v", recs)
		}
		if d := time.Since(recs[0].First); d < 0 || d > time.Minute {
			t.Errorf("first = %v, %v ago: boot time not converted", recs[0].First, d)
		}
		st := p.Stats()
		if st.Reader.Records != 100000 || st.Aggregator.Events != 100000 || st.Aggregator.Entries != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("intervals and overflow", func(t *testing.T) {
		r := newFakeReader(64)
		var out bytes.Buffer
		sink := NewJSONSink(&out)
		p := NewPipeline(PipelineConfig{Reader: r, Sinks: []Sink{sink}, Interval: 20 * time.Millisecond, MaxKeys: 4})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		for i := range 10 {
			ev := sample("cat", fmt.Sprintf("/f%d", i), uint64(BootClock()))
			r.ch <- encode(&ev)
		}
		waitFor(t, "a flush", func() bool { return p.Stats().Aggregator.Entries == 4 })
		cancel()
		<-done
		var kinds []string
		var total uint64
		dec := json.NewDecoder(&out)
		for dec.More() {
			var rec Record
			if err := dec.Decode(&rec); err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, rec.Kind)
			total += rec.Count
		}
		if total != 10 || strings.Join(kinds, ",") != "event,event,event,event,overflow" {
			t.Fatalf("kinds %v, total %d\n%s", kinds, total, out.String())
		}
	})
	t.Run("a failing sink is counted, others still get the batch", func(t *testing.T) {
		r := newFakeReader(1)
		good := &memSink{}
		p := NewPipeline(PipelineConfig{Reader: r, Sinks: []Sink{failSink{}, good}, Interval: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		ev := sample("cat", "/x", 1)
		r.ch <- encode(&ev)
		waitFor(t, "the record", func() bool { return p.Stats().Reader.Records == 1 })
		cancel()
		<-done
		st := p.Stats()
		if len(good.snapshot()) != 1 || st.Sinks[0].Errors != 1 || st.Sinks[1].Errors != 0 {
			t.Fatalf("good sink %d records, sink stats %+v", len(good.snapshot()), st.Sinks)
		}
	})
	t.Run("a reader that does not drain is closed", func(t *testing.T) {
		f := newFakeReader(1)
		p := NewPipeline(PipelineConfig{Reader: noWakeAnswer{f}, Interval: time.Hour, DrainTimeout: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		waitFor(t, "reading", func() bool { return p.Stats().Reader.Running })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

type failSink struct{}

func (failSink) Name() string       { return "fail" }
func (failSink) Write(*Batch) error { return errors.New("no") }

// noWakeAnswer accepts Wake but never answers it.
type noWakeAnswer struct{ f *fakeReader }

func (n noWakeAnswer) Read() ([]byte, error) {
	select {
	case b := <-n.f.ch:
		return b, nil
	case <-n.f.closed:
		return nil, ErrClosed
	}
}
func (noWakeAnswer) Wake() error    { return nil }
func (n noWakeAnswer) Close() error { return n.f.Close() }

func TestSinks(t *testing.T) {
	uid := uint32(1000)
	ev := sample("cat", "/etc/shadow", 2_000_000_000)
	net := sample("curl", "", 3_000_000_000)
	net.Hook, net.Family, net.Port, net.Protocol, net.Addr = HookConnect, familyInet, 443, protoTCP, [16]uint8{192, 0, 2, 1}
	a := NewAggregator(1)
	a.Add(&ev)
	a.Add(&ev)
	a.Add(&net) // overflow: the table holds one key
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	b := Batch{Start: start, End: start.Add(5 * time.Second), Rules: []string{"protect-shadow"},
		BootOffset: time.Duration(start.UnixNano())}

	var sent []map[string]string
	var msgs []string
	var pris []journal.Priority
	js := &JournalSink{send: func(m string, p journal.Priority, f map[string]string) error {
		msgs, pris, sent = append(msgs, m), append(pris, p), append(sent, f)
		return nil
	}}
	var out bytes.Buffer
	a.Flush(&b, func(b *Batch) {
		if err := js.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := NewJSONSink(&out).Write(b); err != nil {
			t.Fatal(err)
		}
	})
	if len(sent) != 2 {
		t.Fatalf("%d journal entries, want 2", len(sent))
	}
	want := map[string]string{
		"MESSAGE_ID": MessageID, "SYSLOG_IDENTIFIER": "aegisbpf", "AEGIS_KIND": "event",
		"AEGIS_RULE": "protect-shadow", "AEGIS_ACTION": "deny", "AEGIS_HOOK": "file_open",
		"AEGIS_ACCESS": "read", "AEGIS_PID": "1000", "AEGIS_TID": "1001", "AEGIS_PPID": "1",
		"AEGIS_UID": "1000", "AEGIS_COMM": "cat", "AEGIS_PATH": "/etc/shadow", "AEGIS_INODE": "131",
		"AEGIS_DEV": "8388609", "AEGIS_CGROUP_ID": "4242", "AEGIS_COUNT": "2",
		"AEGIS_FIRST_USEC": fmt.Sprint(start.Add(2 * time.Second).UnixMicro()),
		"AEGIS_LAST_USEC":  fmt.Sprint(start.Add(2 * time.Second).UnixMicro()),
		"AEGIS_INTERVAL":   "5s",
	}
	if fmt.Sprint(sent[0]) != fmt.Sprint(want) {
		t.Errorf("journal fields\n got %v\nwant %v", sent[0], want)
	}
	if msgs[0] != "deny file_open (read) of /etc/shadow by cat[1000] uid 1000 rule protect-shadow (2 times in 0s)" ||
		pris[0] != journal.PriWarning {
		t.Errorf("message %q priority %d", msgs[0], pris[0])
	}
	if sent[1]["MESSAGE_ID"] != MessageIDOverflow || sent[1]["AEGIS_COUNT"] != "1" || sent[1]["AEGIS_MAX_KEYS"] != "1" {
		t.Errorf("overflow entry %v", sent[1])
	}
	for i, f := range sent {
		f["MESSAGE"] = msgs[i]
		r, err := RecordFromJournal(f)
		if err != nil {
			t.Fatal(err)
		}
		var line Record
		if err := json.Unmarshal(bytes.Split(out.Bytes(), []byte("\n"))[i], &line); err != nil {
			t.Fatal(err)
		}
		if i == 0 && (r.UID == nil || *r.UID != uid) {
			t.Errorf("uid from journal = %v", r.UID)
		}
		gotJ, _ := json.Marshal(r)
		gotL, _ := json.Marshal(line)
		if !bytes.Equal(gotJ, gotL) {
			t.Errorf("journal and JSON records differ:\n%s\n%s", gotJ, gotL)
		}
	}
	t.Run("network record", func(t *testing.T) {
		var b Batch
		a2 := NewAggregator(4)
		net.Action = ActionAudit
		a2.Add(&net)
		a2.Flush(&b, func(b *Batch) {
			r := RecordOf(b, &b.Entries[0])
			if r.Addr != "192.0.2.1:443" || r.Protocol != "tcp" || r.Access != "" || r.Priority() != journal.PriNotice {
				t.Errorf("record %+v", r)
			}
			if m := r.Message(); m != "audit connect to 192.0.2.1:443/tcp by curl[1000] uid 1000 rule #0" {
				t.Errorf("message %q", m)
			}
		})
	})
	t.Run("journal errors", func(t *testing.T) {
		if _, err := RecordFromJournal(map[string]string{"MESSAGE_ID": "x"}); err == nil {
			t.Error("foreign MESSAGE_ID accepted")
		}
		if _, err := RecordFromJournal(map[string]string{"MESSAGE_ID": MessageID, "AEGIS_PID": "x"}); err == nil {
			t.Error("bad number accepted")
		}
		fail := &JournalSink{send: func(string, journal.Priority, map[string]string) error { return errors.New("full") }}
		var b Batch
		a.Add(&ev)
		a.Flush(&b, func(b *Batch) {
			if err := fail.Write(b); err == nil || !strings.Contains(err.Error(), "1 of 1") {
				t.Errorf("Write = %v", err)
			}
		})
	})
}
