package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// JournalEntry is one journal record: field name to value. Binary fields
// are decoded to their bytes; a field that repeats keeps its last value.
type JournalEntry map[string]string

// Message is the entry's MESSAGE.
func (e JournalEntry) Message() string { return e["MESSAGE"] }

// Unit is the systemd unit the entry came from, if any.
func (e JournalEntry) Unit() string {
	if u := e["_SYSTEMD_UNIT"]; u != "" {
		return u
	}
	return e["UNIT"]
}

// Journal runs journalctl -o json in the guest with args (e.g. "-b",
// "-u", "aegisbpf.service") and returns the entries.
func (v *VM) Journal(ctx context.Context, args ...string) ([]JournalEntry, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	out, err := v.Run(ctx, "journalctl --no-pager -o json "+strings.Join(quoted, " "))
	if err != nil {
		return nil, fmt.Errorf("reading the guest journal: %w", err)
	}
	return parseJournal([]byte(out))
}

// parseJournal decodes journalctl -o json output, one object a line.
func parseJournal(data []byte) ([]JournalEntry, error) {
	var entries []JournalEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(line, &raw); err != nil {
			return nil, fmt.Errorf("journal line %d: %w", n, err)
		}
		e := make(JournalEntry, len(raw))
		for k, v := range raw {
			s, err := journalValue(v)
			if err != nil {
				return nil, fmt.Errorf("journal line %d, field %s: %w", n, k, err)
			}
			e[k] = s
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	return entries, nil
}

// journalValue decodes one field: a string, null (too large to show), an
// array of byte values (binary data), or an array of those (a repeated
// field, of which the last is kept).
func journalValue(v json.RawMessage) (string, error) {
	var s *string
	if err := json.Unmarshal(v, &s); err == nil {
		if s == nil {
			return "", nil
		}
		return *s, nil
	}
	var b []byte
	var nums []int
	if err := json.Unmarshal(v, &nums); err == nil {
		for _, n := range nums {
			b = append(b, byte(n))
		}
		return string(b), nil
	}
	var many []json.RawMessage
	if err := json.Unmarshal(v, &many); err != nil {
		return "", err
	}
	if len(many) == 0 {
		return "", nil
	}
	return journalValue(many[len(many)-1])
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
