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
	"time"

	"github.com/aegisbpf/aegisbpf/agent/daemon"
	"github.com/aegisbpf/aegisbpf/agent/slot"
)

func TestStatus(t *testing.T) {
	root := filepath.Join(t.TempDir(), "aegisbpf")
	state := t.TempDir()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &bytes.Buffer{}}
		err := statusCommand().Run(context.Background(), env, append([]string{"--pin-root", root, "--state-dir", state}, args...))
		return out.String(), err
	}

	t.Run("nothing pinned", func(t *testing.T) {
		out, err := run()
		if !errors.Is(err, errNotEnforcing) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(out, "enforcing:  NO") || !strings.Contains(out, "does not exist") {
			t.Errorf("output:\n%s", out)
		}
	})

	inst := filepath.Join(root, "0000018c0a1b2c3d")
	for _, f := range []string{"links/aegis_file_open", "links/aegis_bprm_check", "maps/stats", "maps/rules"} {
		os.MkdirAll(filepath.Dir(filepath.Join(inst, f)), 0o700)
		os.WriteFile(filepath.Join(inst, f), nil, 0o600) // not real pins: drops are unreadable
	}
	b, _ := json.Marshal(daemon.AgentStatus{
		PID: os.Getpid(), State: daemon.StateEnforcing, Status: "enforcing: policy serial 7", Updated: time.Now(),
		Policy: &daemon.PolicyStatus{Digest: "9f86d081", Serial: 7, Mode: "enforce", Rules: 2},
	})
	os.WriteFile(filepath.Join(state, daemon.StatusFile), b, 0o644)

	t.Run("pinned with an agent", func(t *testing.T) {
		out, err := run()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"enforcing:  yes (1 instance(s), 2 pinned link(s))",
			"agent:      enforcing, pid ",
			"policy:     serial 7, sha256 9f86d081, 2 rule(s)",
			"mode:       enforce",
			"links:    aegis_bprm_check, aegis_file_open",
			"note:       reading ring buffer drops:",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out, err := run("--json")
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if !st.Enforcing || st.Agent == nil || !st.Agent.Running || st.Policy.Serial != 7 || st.Mode != "enforce" ||
			len(st.Instances) != 1 || len(st.Instances[0].Maps) != 2 || st.RingbufDrops != nil {
			t.Errorf("status %+v", st)
		}
	})
	t.Run("agent gone", func(t *testing.T) {
		b, _ := json.Marshal(daemon.AgentStatus{PID: 1 << 30, State: daemon.StateStopped, Status: "agent stopped", Updated: time.Now()})
		os.WriteFile(filepath.Join(state, daemon.StatusFile), b, 0o644)
		out, err := run()
		if err != nil || !strings.Contains(out, "agent:      not running (last stopped") {
			t.Errorf("%v\n%s", err, out)
		}
	})
}

func TestStatusSlot(t *testing.T) {
	s := &slot.State{Slots: map[string]*slot.Slot{
		"a": {Version: "1", Serial: 1}, "b": {Version: "2", Serial: 2},
	}, Good: "a", Active: "a"}
	if got := slotState(s); got != "good, version 1, serial 1" {
		t.Errorf("good slot: %q", got)
	}
	s.Pending, s.Active = "b", "b"
	if got := slotState(s); got != "on probation, version 2, serial 2" {
		t.Errorf("pending slot: %q", got)
	}

	// An unreadable state is a problem of the status, not a silent nil.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, slot.StateFile), []byte("{"), 0o644)
	st, err := PinStatus{Root: filepath.Join(t.TempDir(), "none"), SlotsDir: dir}.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Slot != nil || !strings.Contains(strings.Join(st.Problems, "\n"), slot.StateFile) {
		t.Errorf("damaged state: slot %+v, problems %q", st.Slot, st.Problems)
	}
	// No state file: no slot, no problem about it.
	st, _ = PinStatus{Root: filepath.Join(t.TempDir(), "none"), SlotsDir: t.TempDir()}.Status(t.Context())
	if st.Slot != nil || strings.Contains(strings.Join(st.Problems, "\n"), slot.StateFile) {
		t.Errorf("no state: slot %+v, problems %q", st.Slot, st.Problems)
	}
}
