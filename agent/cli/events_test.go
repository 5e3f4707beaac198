package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/agent/events"
)

// fakeJournalctl writes a journalctl stand-in that records its arguments
// and prints out.
func fakeJournalctl(t *testing.T, out string) (path, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	data := filepath.Join(dir, "out")
	os.WriteFile(data, []byte(out), 0o644)
	path = filepath.Join(dir, "journalctl")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\ncat " + data + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argsFile
}

func TestEvents(t *testing.T) {
	entry := map[string]any{
		"__REALTIME_TIMESTAMP": "1735787045000000",
		"MESSAGE":              "deny file_open (read) of /etc/shadow by cat[1000] uid 1000 rule protect-shadow",
		"MESSAGE_ID":           events.MessageID, "AEGIS_KIND": "event",
		"AEGIS_RULE": "protect-shadow", "AEGIS_ACTION": "deny", "AEGIS_HOOK": "file_open", "AEGIS_ACCESS": "read",
		"AEGIS_PID": "1000", "AEGIS_UID": "1000", "AEGIS_COMM": "cat", "AEGIS_COUNT": "3",
		"AEGIS_PATH":       []int{'/', 'e', 't', 'c', '/', 's', 'h', 'a', 'd', 'o', 'w'}, // journald's form of a non-text value
		"AEGIS_FIRST_USEC": "1735787045000000", "AEGIS_LAST_USEC": "1735787046000000",
	}
	over := map[string]any{
		"MESSAGE_ID": events.MessageIDOverflow, "AEGIS_COUNT": "500", "AEGIS_MAX_KEYS": "2048",
		"AEGIS_INTERVAL": "5s", "AEGIS_FIRST_USEC": "1735787045000000", "AEGIS_LAST_USEC": "1735787046000000",
	}
	var lines []string
	for _, e := range []map[string]any{entry, over, {"MESSAGE_ID": "somethingelse"}} {
		b, _ := json.Marshal(e)
		lines = append(lines, string(b))
	}
	jctl, argsFile := fakeJournalctl(t, strings.Join(lines, "\n")+"\n")

	t.Run("json", func(t *testing.T) {
		var out, errb bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errb}
		if err := runEvents(context.Background(), env, []string{"--json", "--since", "10m", "--follow"}, jctl); err != nil {
			t.Fatal(err)
		}
		args, _ := os.ReadFile(argsFile)
		for _, want := range []string{"--output=json", "--follow", "--since=@", "MESSAGE_ID=" + events.MessageID, "MESSAGE_ID=" + events.MessageIDOverflow} {
			if !strings.Contains(string(args), want) {
				t.Errorf("journalctl args lack %q:\n%s", want, args)
			}
		}
		recs := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(recs) != 2 {
			t.Fatalf("%d records:\n%s", len(recs), out.String())
		}
		var r events.Record
		if err := json.Unmarshal([]byte(recs[0]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Path != "/etc/shadow" || r.Count != 3 || r.Rule != "protect-shadow" || r.UID == nil || *r.UID != 1000 {
			t.Errorf("record %+v", r)
		}
		if !strings.Contains(errb.String(), "1 journal entries could not be read") {
			t.Errorf("stderr %q", errb.String())
		}
	})
	t.Run("human", func(t *testing.T) {
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &bytes.Buffer{}}
		if err := runEvents(context.Background(), env, []string{"--lines", "5"}, jctl); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if !strings.Contains(got, "deny file_open (read) of /etc/shadow by cat[1000] uid 1000 rule protect-shadow (3 times in 1s)") ||
			!strings.Contains(got, "500 more events in 5s not itemized") {
			t.Errorf("output:\n%s", got)
		}
	})
	t.Run("usage", func(t *testing.T) {
		env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		for _, args := range [][]string{{"extra"}, {"--since", "-1m"}, {"--bogus"}} {
			var ue *UsageError
			if err := runEvents(context.Background(), env, args, jctl); !errors.As(err, &ue) {
				t.Errorf("%v: %v, want a usage error", args, err)
			}
		}
	})
	t.Run("command", func(t *testing.T) {
		if c := eventsCommand(); c.Name != "events" || c.Run == nil {
			t.Errorf("eventsCommand() = %+v", c)
		}
	})
	t.Run("no journalctl", func(t *testing.T) {
		env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		err := runEvents(context.Background(), env, nil, filepath.Join(t.TempDir(), "missing"))
		if err == nil || !strings.Contains(err.Error(), "systemd journal") {
			t.Errorf("err = %v", err)
		}
	})
}
