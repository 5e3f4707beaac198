package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/aegisbpf/aegisbpf/agent/daemon"
	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/agent/events"
	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/bpf"
)

// Status is what `aegisbpf status` reports, in its --json form.
type Status struct {
	// Enforcing: at least one instance has pinned (hence attached) links.
	Enforcing bool `json:"enforcing"`
	// Agent is the running agent's own account (status.json), nil when
	// there is none.
	Agent *AgentState `json:"agent,omitempty"`
	// Mode and Policy come from the agent; empty when no agent said.
	Mode      string           `json:"mode,omitempty"`
	Policy    *PolicyRef       `json:"policy,omitempty"`
	Instances []InstanceStatus `json:"instances"`
	// RingbufDrops is the kernel's ring buffer drop counter of the newest
	// instance, nil when it could not be read.
	RingbufDrops *uint64 `json:"ringbuf_drops,omitempty"`
	// Slot is the active layer slot, nil when slots are not in use.
	Slot *SlotStatus `json:"slot,omitempty"`
	// Problems lists what could not be read.
	Problems []string `json:"problems,omitempty"`
}

// AgentState is the agent process as it describes itself.
type AgentState struct {
	PID     int       `json:"pid"`
	Running bool      `json:"running"`
	State   string    `json:"state"`
	Status  string    `json:"status"`
	Updated time.Time `json:"updated"`
	Starts  uint64    `json:"starts,omitempty"`
	Version string    `json:"version,omitempty"`
}

// PolicyRef identifies the applied policy.
type PolicyRef struct {
	Digest string `json:"digest"`
	Serial uint64 `json:"serial"`
	Rules  int    `json:"rules"`
}

// InstanceStatus is one pinned instance.
type InstanceStatus struct {
	ID       string   `json:"id"`
	Dir      string   `json:"dir"`
	Programs []string `json:"programs"` // pinned links
	Maps     []string `json:"maps"`
}

// SlotStatus is the layer slot in use.
type SlotStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// StatusSource produces the status. PinStatus reads the pins and the
// agent's status file; the engine may provide a richer one.
type StatusSource interface {
	Status(ctx context.Context) (*Status, error)
}

// statusCommand returns `aegisbpf status` reading the default locations.
func statusCommand() *Command {
	return newStatusCommand(func(pinRoot, stateDir string) StatusSource {
		return PinStatus{Root: pinRoot, StateDir: stateDir, SlotsDir: slot.DefaultDir}
	})
}

// newStatusCommand returns `aegisbpf status` with a source made from the
// --pin-root and --state-dir flags.
func newStatusCommand(source func(pinRoot, stateDir string) StatusSource) *Command {
	return &Command{
		Name:    "status",
		Summary: "show whether the kernel enforces, the policy, pins and drops",
		Run: func(ctx context.Context, env *Env, args []string) error {
			fs := NewFlagSet(env, "status", "aegisbpf status [--json]")
			asJSON := fs.Bool("json", false, "print the status as JSON")
			pinRoot := fs.String("pin-root", DefaultPinRoot, "where instances are pinned")
			stateDir := fs.String("state-dir", daemon.DefaultStateDir, "the agent's state directory")
			if err := ParseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return Usagef("status takes no arguments")
			}
			st, err := source(*pinRoot, *stateDir).Status(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				b, err := json.MarshalIndent(st, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s\n", b)
			} else {
				writeStatus(env.Stdout, st, time.Now())
			}
			if !st.Enforcing {
				return errNotEnforcing
			}
			return nil
		},
	}
}

// errNotEnforcing makes `aegisbpf status` exit 1 when nothing enforces,
// so that scripts can test it.
var errNotEnforcing = errors.New("not enforcing: no pinned BPF links")

// DefaultPinRoot is where the engine pins instances.
const DefaultPinRoot = "/sys/fs/bpf/aegisbpf"

// PinStatus reads the status from the pins under Root (one directory per
// instance, with links/ and maps/) and from the agent's status file in
// StateDir. It needs no running agent: pinned links enforce without one.
type PinStatus struct {
	Root     string
	StateDir string
	// SlotsDir holds the A/B slot state; "" or a directory without one
	// leaves Status.Slot nil.
	SlotsDir string
}

// Status implements StatusSource.
func (p PinStatus) Status(ctx context.Context) (*Status, error) {
	st := &Status{Instances: []InstanceStatus{}}
	entries, err := os.ReadDir(p.Root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.Problems = append(st.Problems, fmt.Sprintf("%s does not exist: nothing was ever pinned", p.Root))
	case err != nil:
		st.Problems = append(st.Problems, fmt.Sprintf("reading %s: %v", p.Root, err))
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		in := InstanceStatus{ID: e.Name(), Dir: filepath.Join(p.Root, e.Name())}
		in.Programs = pinNames(filepath.Join(in.Dir, "links"), st)
		in.Maps = pinNames(filepath.Join(in.Dir, "maps"), st)
		if len(in.Programs) > 0 {
			st.Enforcing = true
		}
		st.Instances = append(st.Instances, in)
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].ID < st.Instances[j].ID })
	if n := len(st.Instances); n > 0 {
		newest := st.Instances[n-1]
		if drops, err := readDrops(filepath.Join(newest.Dir, "maps", bpf.AegisMapStats)); err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("reading ring buffer drops: %v", err))
		} else {
			st.RingbufDrops = &drops
		}
	}
	if p.StateDir != "" {
		a, err := daemon.ReadStatus(p.StateDir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			st.Problems = append(st.Problems, err.Error())
		default:
			st.Agent = &AgentState{PID: a.PID, Running: processRunning(a.PID), State: a.State,
				Status: a.Status, Updated: a.Updated, Starts: a.Starts, Version: a.Version}
			if a.Policy != nil {
				st.Mode = a.Policy.Mode
				st.Policy = &PolicyRef{Digest: a.Policy.Digest, Serial: a.Policy.Serial, Rules: a.Policy.Rules}
			}
		}
	}
	if p.SlotsDir != "" {
		s, ok, err := slot.ReadState(p.SlotsDir)
		switch {
		case err != nil:
			st.Problems = append(st.Problems, err.Error())
		case ok && s.Active != "":
			st.Slot = &SlotStatus{Name: s.Active, State: slotState(s)}
		}
	}
	return st, nil
}

// slotState describes the active slot: its layer and its role.
func slotState(s *slot.State) string {
	role := "active"
	switch {
	case s.OnProbation():
		role = "on probation"
	case s.Active == s.Good:
		role = "good"
	}
	if sl := s.Slots[s.Active]; sl != nil {
		return fmt.Sprintf("%s, version %s, serial %d", role, sl.Version, sl.Serial)
	}
	return role
}

func pinNames(dir string, st *Status) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			st.Problems = append(st.Problems, fmt.Sprintf("reading %s: %v", dir, err))
		}
		return []string{}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// readDrops sums the per-CPU ring buffer drop counter of a pinned stats map.
func readDrops(path string) (uint64, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	return engine.SumPerCPU(m, events.StatRingbufDrops)
}

// processRunning reports whether pid is a live process.
func processRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie has exited.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

func writeStatus(w io.Writer, st *Status, now time.Time) {
	yes := map[bool]string{true: "yes", false: "NO"}
	links := 0
	for _, in := range st.Instances {
		links += len(in.Programs)
	}
	fmt.Fprintf(w, "enforcing:  %s (%d instance(s), %d pinned link(s))\n", yes[st.Enforcing], len(st.Instances), links)
	switch a := st.Agent; {
	case a == nil:
		fmt.Fprintln(w, "agent:      no status file (not started under systemd, or no /run/aegisbpf)")
	case a.Running:
		fmt.Fprintf(w, "agent:      %s, pid %d, updated %s ago: %s\n", a.State, a.PID, now.Sub(a.Updated).Round(time.Second), a.Status)
	default:
		fmt.Fprintf(w, "agent:      not running (last %s at %s: %s)\n", a.State, a.Updated.Local().Format(time.RFC3339), a.Status)
	}
	if p := st.Policy; p != nil {
		fmt.Fprintf(w, "policy:     serial %d, sha256 %s, %d rule(s)\n", p.Serial, p.Digest, p.Rules)
	}
	if st.Mode != "" {
		fmt.Fprintf(w, "mode:       %s\n", st.Mode)
	}
	for _, in := range st.Instances {
		fmt.Fprintf(w, "instance:   %s (%s)\n  links:    %s\n  maps:     %s\n", in.ID, in.Dir, orNone(in.Programs), orNone(in.Maps))
	}
	if st.RingbufDrops != nil {
		fmt.Fprintf(w, "ring buffer drops: %d\n", *st.RingbufDrops)
	}
	if st.Slot != nil {
		fmt.Fprintf(w, "slot:       %s (%s)\n", st.Slot.Name, st.Slot.State)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "note:       %s\n", p)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
