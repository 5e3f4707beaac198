package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/events"
)

// maxLine bounds one journal JSON line; an entry of the agent is far
// smaller (its largest field is a path of at most 4 KiB).
const maxLine = 4 << 20

// Entry is one aggregated event entry of the journal: Count identical
// events between First and Last.
type Entry struct {
	Line     int // line of the input it was read from, 1-based
	Rule     string
	Action   string // deny, audit, unresolved
	Hook     string
	Access   string
	Comm     string
	Path     string
	Addr     string
	Protocol string
	CgroupID uint64
	Count    uint64
	First    time.Time
	Last     time.Time
}

// Input is what a journal read holds: the event entries in input order,
// and the summary of events the agent did not itemize (overflow).
type Input struct {
	Entries []Entry
	// NotItemized is the sum of the overflow entries' counts: events the
	// agent counted but did not describe, so no report can group them.
	NotItemized uint64
	// Other counts lines that are journal entries of something else.
	Other int
}

// ReadJournal reads `journalctl -o json` lines (one JSON object a line;
// blank lines are skipped). Entries of other MESSAGE_IDs are counted in
// Other. A line that is not a journal entry, or an agent entry with a bad
// field, stops the read with an error naming its line.
func ReadJournal(r io.Reader) (*Input, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	in := &Input{}
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(trimSpace(line)) == 0 {
			continue
		}
		if err := in.add(n, line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", n+1, maxLine)
		}
		return nil, fmt.Errorf("reading journal entries: %w", err)
	}
	return in, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func (in *Input) add(n int, line []byte) error {
	fields, err := JournalFields(line)
	if err != nil {
		return err
	}
	id := fields["MESSAGE_ID"]
	if id != events.MessageID && id != events.MessageIDOverflow {
		in.Other++
		return nil
	}
	rec, err := events.RecordFromJournal(fields)
	if err != nil {
		return err
	}
	if _, ok := fields[events.FieldCount]; !ok {
		return fmt.Errorf("field %s is missing", events.FieldCount)
	}
	if rec.Count == 0 {
		return fmt.Errorf("field %s is 0: an entry aggregates at least one event", events.FieldCount)
	}
	if rec.Kind == events.KindOverflow {
		in.NotItemized += rec.Count
		return nil
	}
	if rec.Action == "" {
		return fmt.Errorf("field %s is missing", events.FieldAction)
	}
	in.Entries = append(in.Entries, Entry{
		Line: n, Rule: rec.Rule, Action: rec.Action, Hook: rec.Hook, Access: rec.Access,
		Comm: rec.Comm, Path: rec.Path, Addr: rec.Addr, Protocol: rec.Protocol,
		CgroupID: rec.CgroupID, Count: rec.Count, First: rec.First, Last: rec.Last,
	})
	return nil
}

// journalFields flattens one `journalctl -o json` entry. A value is a
// string, an array of bytes (a binary or non-UTF-8 value), null (a value
// journalctl would not print), or an array of those when the field was
// given more than once; of a repeated field the first value is kept.
// JournalFields flattens one `journalctl -o json` entry: a field is a
// string, an array of bytes (a binary value), null, or an array of those
// (a repeated field: the first one is kept).
func JournalFields(line []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, fmt.Errorf("not a journal entry (a JSON object): %w", err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		s, err := journalValue(v, true)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

func journalValue(v json.RawMessage, top bool) (string, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	if string(v) == "null" {
		return "", nil
	}
	var nums []int
	if json.Unmarshal(v, &nums) == nil {
		b := make([]byte, len(nums))
		for i, n := range nums {
			if n < 0 || n > 255 {
				return "", fmt.Errorf("byte %d of a binary value is %d", i, n)
			}
			b[i] = byte(n)
		}
		return string(b), nil
	}
	var many []json.RawMessage
	if top && json.Unmarshal(v, &many) == nil && len(many) > 0 {
		return journalValue(many[0], false)
	}
	return "", fmt.Errorf("unexpected value %.40s (want a string or an array of bytes)", v)
}

// Journal reads the agent's event entries from the systemd journal with
// journalctl (sdjournal needs cgo; the binary is static). It owns that
// command line.
type Journal struct {
	// Command is the journalctl to run ("journalctl" from PATH).
	Command string
	// Stderr receives journalctl's messages (e.g. that the user cannot see
	// the system journal).
	Stderr io.Writer
}

// Args returns journalctl's arguments for events of the last since (all
// the journal holds when since is 0): the agent's events and its overflow
// summaries, as JSON lines.
func (j *Journal) Args(since time.Duration) []string {
	args := []string{"-o", "json", "--no-pager", "MESSAGE_ID=" + events.MessageID, "MESSAGE_ID=" + events.MessageIDOverflow}
	if since > 0 {
		sec := int64((since + time.Second - 1) / time.Second)
		args = append(args, "--since=-"+strconv.FormatInt(sec, 10)+"s")
	}
	return args
}

// Read runs journalctl and reads its output with ReadJournal.
func (j *Journal) Read(ctx context.Context, since time.Duration) (*Input, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.Command, j.Args(since)...)
	cmd.Stderr = j.Stderr
	cmd.WaitDelay = time.Second // do not wait on the pipes of a killed journalctl for long
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running journalctl (events are read from the systemd journal): %w", err)
	}
	in, rerr := ReadJournal(out)
	if rerr != nil {
		cancel()
		_ = cmd.Wait()
		return nil, fmt.Errorf("reading journalctl output: %w", rerr)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("journalctl: %w", err)
	}
	return in, nil
}
