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

	"github.com/aegisbpf/aegisbpf/agent/slot"
)

func runSlot(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err = slotCommand().Execute(context.Background(), env, args)
	return out.String(), errb.String(), err
}

func TestSlotStatusEmpty(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runSlot(t, "status", "--dir", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s slot.State
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Format != slot.StateFormat || len(s.Slots) != 0 {
		t.Fatalf("status --json on an empty host: %v\n%s", err, out)
	}
	out, _, err = runSlot(t, "status", "--dir", dir)
	if err != nil || !strings.Contains(out, "a     -                -       empty") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, slot.StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status wrote a state file: %v", err)
	}
}

func TestSlotUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"install", "--dir", dir}, "takes 1 argument"},
		{[]string{"switch", "--dir", dir, "extra"}, "takes 0 argument"},
		{[]string{"probation", "--dir", dir, "--for", "0s"}, "need 0 < --for <= --limit"},
		{[]string{"frobnicate"}, "unknown verb"},
	} {
		_, _, err := runSlot(t, c.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want a usage error with %q", c.args, err, c.want)
		}
	}
}

func TestSlotRefusesBrokenState(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, slot.StateFile)
	os.WriteFile(p, []byte("{\"format\": 1,\n  \"slots\": [] }\n"), 0o644)
	_, _, err := runSlot(t, "status", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), p+": line 2 column") {
		t.Fatalf("status over a broken state: %v", err)
	}
}

func TestSlotAgentStoppedSuccessIsQuiet(t *testing.T) {
	// A clean stop does nothing, not even read the state.
	_, _, err := runSlot(t, "agent-stopped", "--dir", filepath.Join(t.TempDir(), "missing"))
	if err != nil {
		t.Fatal(err)
	}
}
