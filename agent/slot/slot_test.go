package slot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// fakeSystem records what the manager asks of the host.
type fakeSystem struct {
	mu        sync.Mutex
	boot      string
	failSlot  string // Activate of this slot fails
	activated []string
	agent     []AgentAction
	probation int
	health    []Health // returned in turn; the last one repeats
	rollbacks int
	m         *Manager
}

func (f *fakeSystem) BootID() (string, error) { return f.boot, nil }

func (f *fakeSystem) Verify(ctx context.Context, p string, ring keys.Ring) (*layer.Layer, error) {
	return layer.VerifyHashes(p, ring)
}

func (f *fakeSystem) Activate(ctx context.Context, slot string, l *layer.Layer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slot == f.failSlot {
		return errors.New("mount failed (test)")
	}
	f.activated = append(f.activated, slot+"="+l.Manifest.Version)
	return nil
}

func (f *fakeSystem) Agent(ctx context.Context, a AgentAction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agent = append(f.agent, a)
	return nil
}

func (f *fakeSystem) StartProbation(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probation++
	return nil
}

func (f *fakeSystem) StartRollback(ctx context.Context) error {
	f.mu.Lock()
	f.rollbacks++
	f.mu.Unlock()
	// The unit runs 'slot rollback --auto'.
	return f.m.Rollback(ctx, RollbackOptions{Auto: true, Agent: AgentRecover, Reason: "the agent unit failed (OnFailure)"})
}

func (f *fakeSystem) AgentHealth(ctx context.Context) (Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.health[0]
	if len(f.health) > 1 {
		f.health = f.health[1:]
	}
	return h, nil
}

// layers builds test layers once per test binary: versions 1-3 with
// serials 1-3 signed by the trusted test key, and "x" signed by another.
var layers = struct {
	once sync.Once
	dir  map[string]string
	keys string
	err  error
}{}

func testLayers(t *testing.T) (map[string]string, string) {
	t.Helper()
	for _, tool := range []string{"mkfs.erofs", "veritysetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("building test layers needs %s (make deps installs it)", tool)
		}
	}
	layers.once.Do(func() {
		base, err := os.MkdirTemp("", "slot-layers-")
		if err != nil {
			layers.err = err
			return
		}
		layers.dir = map[string]string{}
		for i, v := range []string{"1", "2", "3", "x"} {
			c := layertest.Config{Version: v, Serial: uint64(i + 1), AgentSize: 64 << 10, Seed: "v" + v}
			if v == "x" {
				c.Serial = 9
			}
			res, in, err := layertest.Build(context.Background(), filepath.Join(base, v), c)
			if err != nil {
				layers.err = err
				return
			}
			layers.dir[v] = filepath.Dir(res.ManifestPath)
			if v == "1" {
				layers.keys = in.KeysDir
			}
		}
	})
	if layers.err != nil {
		t.Fatal(layers.err)
	}
	return layers.dir, layers.keys
}

// trustAll makes a keys directory trusting the keys of versions 1-3 (each
// layertest seed is its own key) but not x's.
func trustAll(t *testing.T, dirs map[string]string) string {
	t.Helper()
	out := t.TempDir()
	for _, v := range []string{"1", "2", "3"} {
		pub, _ := layertest.Key("v" + v)
		pem, _ := keys.MarshalPublic(pub)
		if err := os.WriteFile(filepath.Join(out, v+".pub"), pem, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func newManager(t *testing.T) (*Manager, *fakeSystem, map[string]string) {
	t.Helper()
	dirs, _ := testLayers(t)
	sys := &fakeSystem{boot: "boot-1", health: []Health{{}}}
	var out bytes.Buffer
	m := &Manager{Dir: t.TempDir(), KeysDir: trustAll(t, dirs), Sys: sys, Out: &out, LockWait: time.Second}
	sys.m = m
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager output:\n%s", out.String())
		}
	})
	return m, sys, dirs
}

func state(t *testing.T, m *Manager) *State {
	t.Helper()
	s, err := m.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// v2OnProbation brings a new host to v1 good in slot a and v2 active on
// probation in slot b.
func v2OnProbation(t *testing.T, m *Manager, dirs map[string]string) {
	t.Helper()
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	must(t, m.Install(ctx, dirs["2"]))
	must(t, m.Switch(ctx, 1))
	must(t, m.Activate(ctx, ActivateOptions{}))
}

func TestGoodUpdate(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	if s := state(t, m); s.Good != "a" || s.Active != "a" || s.SerialFloor != 1 {
		t.Fatalf("after seed and boot: good %q active %q floor %d", s.Good, s.Active, s.SerialFloor)
	}
	must(t, m.Install(ctx, dirs["2"]))
	s := state(t, m)
	if s.Slots["b"] == nil || s.Slots["b"].Version != "2" || s.Pending != "" {
		t.Fatalf("after install: %+v", s)
	}
	must(t, m.Switch(ctx, 1))
	if s := state(t, m); s.Pending != "b" || s.Tries != 1 || s.Active != "a" {
		t.Fatalf("after switch: pending %q tries %d active %q", s.Pending, s.Tries, s.Active)
	}
	must(t, m.Activate(ctx, ActivateOptions{}))
	s = state(t, m)
	if s.Active != "b" || s.Tries != 0 || !s.OnProbation() {
		t.Fatalf("after activate: active %q tries %d pending %q", s.Active, s.Tries, s.Pending)
	}
	if got := strings.Join(sys.activated, " "); got != "a=1 b=2" {
		t.Errorf("activated %q, want a=1 b=2", got)
	}
	if len(sys.agent) != 2 || sys.agent[0] != AgentStart || sys.agent[1] != AgentRestart || sys.probation != 1 {
		t.Errorf("agent actions %v, probation starts %d", sys.agent, sys.probation)
	}
	// Activating again in the same boot does nothing.
	must(t, m.Activate(ctx, ActivateOptions{}))
	if len(sys.activated) != 2 {
		t.Errorf("a second activate re-activated: %v", sys.activated)
	}
	must(t, m.MarkGood(ctx))
	s = state(t, m)
	if s.Good != "b" || s.PreviousGood != "a" || s.Pending != "" || s.SerialFloor != 2 || s.Slots["b"].MarkedGood.IsZero() {
		t.Fatalf("after mark-good: %s", Describe(s))
	}
	if !strings.Contains(Describe(s), "active, good") {
		t.Errorf("status:\n%s", Describe(s))
	}
}

// refusal runs fn and checks it fails with want in its message and leaves
// state.json byte for byte as it was.
func refusal(t *testing.T, m *Manager, name, want string, fn func() error) {
	t.Helper()
	before, _ := os.ReadFile(filepath.Join(m.Dir, StateFile))
	err := fn()
	if err == nil {
		t.Errorf("%s: succeeded, want a refusal", name)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q lacks %q", name, err, want)
	}
	after, _ := os.ReadFile(filepath.Join(m.Dir, StateFile))
	if !bytes.Equal(before, after) {
		t.Errorf("%s: the state changed:\n%s\n---\n%s", name, before, after)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	must(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644))
	}
	return dst
}

func flipByte(t *testing.T, dir, suffix string, at int64) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(matches) != 1 {
		t.Fatalf("no *%s in %s", suffix, dir)
	}
	f, err := os.OpenFile(matches[0], os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, at)
	must(t, err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b, at)
	must(t, err)
}

func TestRefusalsChangeNothing(t *testing.T) {
	m, _, dirs := newManager(t)
	ctx := t.Context()
	refusal(t, m, "switch with nothing installed", "install a layer first", func() error { return m.Switch(ctx, 1) })
	v2OnProbation(t, m, dirs)
	refusal(t, m, "install during probation", "on probation", func() error { return m.Install(ctx, dirs["3"]) })
	must(t, m.MarkGood(ctx))

	tampered := copyDir(t, dirs["3"])
	flipByte(t, tampered, ".erofs", 5000)
	refusal(t, m, "tampered layer", "layer is corrupt", func() error { return m.Install(ctx, tampered) })
	badSig := copyDir(t, dirs["3"])
	flipByte(t, badSig, ".manifest.json", 40)
	refusal(t, m, "bad signature", "not signed by a trusted key", func() error { return m.Install(ctx, badSig) })
	refusal(t, m, "wrong key", "not signed by a trusted key", func() error { return m.Install(ctx, dirs["x"]) })
	refusal(t, m, "downgrade", "below serial 2 of the last good layer", func() error { return m.Install(ctx, dirs["1"]) })
	refusal(t, m, "missing layer", "no such file", func() error { return m.Install(ctx, filepath.Join(t.TempDir(), "none")) })
	refusal(t, m, "mark-good with nothing pending", "already good", func() error {
		if err := m.MarkGood(ctx); err != nil {
			return err
		}
		return errors.New("slot b is already good") // a no-op, not a change
	})
	refusal(t, m, "tries out of range", "tries must be 1 to 10", func() error { return m.Switch(ctx, 11) })
	refusal(t, m, "automatic rollback of a good slot", "nothing on probation", func() error {
		if err := m.Rollback(ctx, RollbackOptions{Auto: true}); err != nil {
			return err
		}
		return errors.New("nothing on probation")
	})
}

func TestSwitchToPreviousGoodIsRefusedBelowFloor(t *testing.T) {
	m, _, dirs := newManager(t)
	ctx := t.Context()
	v2OnProbation(t, m, dirs)
	must(t, m.MarkGood(ctx))
	refusal(t, m, "switch back to serial 1", "anti-rollback", func() error { return m.Switch(ctx, 1) })
}

func TestBootRollsBackUntriedPending(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	v2OnProbation(t, m, dirs)
	// Reboot before mark-good.
	sys.boot = "boot-2"
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	s := state(t, m)
	if s.Active != "a" || s.Pending != "" || s.Slots["b"].Bad == "" || s.ActiveBoot != "boot-2" {
		t.Fatalf("after the reboot:\n%s", Describe(s))
	}
	if !strings.Contains(s.Slots["b"].Bad, "not marked good within its tries") {
		t.Errorf("bad reason %q", s.Slots["b"].Bad)
	}
	refusal(t, m, "switch to a bad slot", "was rolled back", func() error { return m.Switch(ctx, 1) })
}

func TestBootUsesTries(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	must(t, m.Install(ctx, dirs["2"]))
	must(t, m.Switch(ctx, 2))
	for i, boot := range []string{"boot-2", "boot-3"} {
		sys.boot = boot
		must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
		if s := state(t, m); s.Active != "b" || s.Tries != 1-i {
			t.Fatalf("boot %d: active %q tries %d", i+2, s.Active, s.Tries)
		}
	}
	sys.boot = "boot-4"
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	if s := state(t, m); s.Active != "a" || s.Slots["b"].Bad == "" {
		t.Fatalf("after the tries ran out:\n%s", Describe(s))
	}
}

func TestAgentFailureOnProbationRollsBack(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	must(t, m.AgentStopped(ctx, "watchdog", "killed", "ABRT"))
	if s := state(t, m); s.Active != "a" || s.Slots["a"].Bad != "" {
		t.Fatalf("a failure of the good slot's agent changed the state:\n%s", Describe(s))
	}
	must(t, m.Install(ctx, dirs["2"]))
	must(t, m.Switch(ctx, 1))
	must(t, m.Activate(ctx, ActivateOptions{}))
	must(t, m.AgentStopped(ctx, "success", "exited", "0"))
	if s := state(t, m); !s.OnProbation() {
		t.Fatalf("a clean stop rolled back:\n%s", Describe(s))
	}
	agentCalls := len(sys.agent)
	must(t, m.AgentStopped(ctx, "watchdog", "killed", "ABRT"))
	activations := len(sys.activated)
	s := state(t, m)
	if s.Active != "a" || s.Good != "a" || s.Pending != "" || !strings.Contains(s.Slots["b"].Bad, "result watchdog, killed ABRT") {
		t.Fatalf("after the agent failed on probation:\n%s", Describe(s))
	}
	if got := sys.activated[len(sys.activated)-1]; got != "a=1" {
		t.Errorf("last activation %q, want a=1", got)
	}
	if sys.rollbacks != 1 || len(sys.agent) != agentCalls+1 || sys.agent[agentCalls] != AgentRecover {
		t.Errorf("rollback unit runs %d, agent actions after it %v; want one run that recovers the agent", sys.rollbacks, sys.agent[agentCalls:])
	}
	// The OnFailure backstop afterwards finds nothing to do.
	must(t, m.Rollback(ctx, RollbackOptions{Auto: true, Agent: AgentRecover}))
	if len(sys.activated) != activations {
		t.Errorf("a second automatic rollback re-activated: %v", sys.activated)
	}
}

func TestActivateFallsBackWhenPendingFails(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	must(t, m.Install(ctx, dirs["2"]))
	must(t, m.Switch(ctx, 1))
	sys.failSlot = "b"
	must(t, m.Activate(ctx, ActivateOptions{}))
	s := state(t, m)
	if s.Active != "a" || s.Pending != "" || !strings.Contains(s.Slots["b"].Bad, "mount failed") {
		t.Fatalf("after a failed activation:\n%s", Describe(s))
	}
	if sys.probation != 0 {
		t.Errorf("probation started for a slot that did not activate")
	}
}

func TestActivateRefusesTamperedSlot(t *testing.T) {
	m, _, dirs := newManager(t)
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Install(ctx, dirs["2"]))
	must(t, m.Switch(ctx, 1))
	// The copy on /var is altered after install: activation must notice.
	flipByte(t, filepath.Join(m.Dir, "slots", "b"), ".erofs", 100)
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	s := state(t, m)
	if s.Active != "a" || !strings.Contains(s.Slots["b"].Bad, "layer is corrupt") {
		t.Fatalf("after activating a tampered slot:\n%s", Describe(s))
	}
}

func TestExplicitRollbackOfGoodSlot(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	must(t, m.Seed(ctx, dirs["1"]))
	must(t, m.Activate(ctx, ActivateOptions{Boot: true}))
	refusal(t, m, "rollback with no previous good", "no previous good slot", func() error {
		return m.Rollback(ctx, RollbackOptions{Agent: AgentRestart})
	})
	must(t, m.Install(ctx, dirs["2"]))
	must(t, m.Switch(ctx, 1))
	must(t, m.Activate(ctx, ActivateOptions{}))
	must(t, m.MarkGood(ctx))
	must(t, m.Rollback(ctx, RollbackOptions{Agent: AgentRestart}))
	s := state(t, m)
	if s.Good != "a" || s.Active != "a" || s.SerialFloor != 1 || s.Slots["b"].Bad == "" {
		t.Fatalf("after an explicit rollback:\n%s", Describe(s))
	}
	if last := sys.agent[len(sys.agent)-1]; last != AgentRestart {
		t.Errorf("last agent action %v, want a restart", last)
	}
	// The freed slot takes a new install.
	must(t, m.Install(ctx, dirs["3"]))
	if s := state(t, m); s.Slots["b"].Version != "3" || s.Slots["b"].Bad != "" {
		t.Fatalf("install over the bad slot:\n%s", Describe(s))
	}
}

func TestProbationMarksGood(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	v2OnProbation(t, m, dirs)
	sys.health = []Health{
		{State: "activating/start"},
		{Active: true, Restarts: 0, ActiveAt: 100, Watchdog: 150, WatchdogS: 10_000_000, Now: 200},
	}
	must(t, m.Probation(ctx, 30*time.Millisecond, time.Minute, 5*time.Millisecond))
	if s := state(t, m); s.Good != "b" || s.Pending != "" {
		t.Fatalf("after probation:\n%s", Describe(s))
	}
}

func TestProbationGivesUp(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	v2OnProbation(t, m, dirs)
	// Active but never feeding its watchdog.
	sys.health = []Health{{Active: true, ActiveAt: 100, Watchdog: 0, WatchdogS: 10_000_000, Now: 200, State: "active/running"}}
	must(t, m.Probation(ctx, 10*time.Millisecond, 60*time.Millisecond, 5*time.Millisecond))
	s := state(t, m)
	if s.Active != "a" || !strings.Contains(s.Slots["b"].Bad, "agent not healthy") {
		t.Fatalf("after a failed probation:\n%s", Describe(s))
	}
}

func TestParseStateErrors(t *testing.T) {
	good := `{"format":1,"slots":{},"serial_floor":0,"history":[]}`
	if _, err := ParseState([]byte(good)); err != nil {
		t.Fatalf("a valid empty state: %v", err)
	}
	slotA := `"a":{"version":"1","serial":1,"manifest_sha256":"` + strings.Repeat("a", 64) + `","root_hash":"` + strings.Repeat("b", 64) + `","key_id":"0123456789abcdef","installed":"2026-01-01T00:00:00Z"}`
	for _, c := range []struct{ name, in, want string }{
		{"empty", ``, "empty file"},
		{"syntax", "{\"format\":1,\n\"slots\":{,}}", "line 2 column 10"},
		{"unknown field", `{"format":1,"slotz":{}}`, `unknown field "slotz"`},
		{"trailing data", good + `{}`, "data after the state object"},
		{"format", `{"format":2,"slots":{}}`, "format is 2"},
		{"unknown slot", `{"format":1,"slots":{"c":null}}`, `unknown slot "c"`},
		{"good empty", `{"format":1,"slots":{},"good":"a"}`, "good: slot a is empty"},
		{"pending is good", `{"format":1,"slots":{` + slotA + `},"good":"a","pending":"a","tries":1}`, "also the good slot"},
		{"tries", `{"format":1,"slots":{` + slotA + `},"pending":"a","tries":11}`, "tries: 11"},
		{"active without boot", `{"format":1,"slots":{` + slotA + `},"active":"a"}`, "active_boot"},
		{"bad hash", strings.Replace(`{"format":1,"slots":{`+slotA+`}}`, strings.Repeat("a", 64), "xyz", 1), "manifest_sha256"},
		{"type", `{"format":"1"}`, "line 1 column 14"},
	} {
		_, err := ParseState([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestUnreadableStateChangesNothing(t *testing.T) {
	m, _, dirs := newManager(t)
	p := filepath.Join(m.Dir, StateFile)
	must(t, os.WriteFile(p, []byte("{\"format\":1,"), 0o644))
	err := m.Install(t.Context(), dirs["1"])
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("install over a broken state: %v", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "{\"format\":1," {
		t.Errorf("the broken state was rewritten: %q", got)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "slots", "a")); err == nil {
		t.Errorf("a slot was written while the state was unreadable")
	}
}

func TestParseShow(t *testing.T) {
	out := "ActiveState=active\nSubState=running\nNRestarts=2\nActiveEnterTimestampMonotonic=123\nWatchdogTimestampMonotonic=456\nWatchdogUSec=10s\n"
	h, err := parseShow([]byte(out), 999)
	must(t, err)
	want := Health{Active: true, State: "active/running", Restarts: 2, ActiveAt: 123, Watchdog: 456, WatchdogS: 10_000_000, Now: 999}
	if h != want {
		t.Errorf("parseShow = %+v, want %+v", h, want)
	}
	for in, want := range map[string]uint64{"0": 0, "1min 30s": 90_000_000, "500ms": 500_000, "2500000": 2_500_000} {
		if got := parseUSec(in); got != want {
			t.Errorf("parseUSec(%q) = %d, want %d", in, got, want)
		}
	}
}

func ExampleDescribe() {
	s := NewState()
	s.Slots["a"] = &Slot{Version: "1", Serial: 1}
	s.Slots["b"] = &Slot{Version: "2", Serial: 2}
	s.Good, s.Active, s.ActiveBoot, s.Pending, s.Tries, s.SerialFloor = "a", "b", "x", "b", 0, 1
	fmt.Print(Describe(s))
	// Output:
	// SLOT  VERSION          SERIAL  STATE
	// a     1                1       good
	// b     2                2       active, pending (0 tries left), on probation
	// anti-rollback floor: serial 1
}

func TestFailedRollbackDoesNotClaimTheGoodSlot(t *testing.T) {
	m, sys, dirs := newManager(t)
	ctx := t.Context()
	v2OnProbation(t, m, dirs)
	sys.failSlot = "a"
	if err := m.AgentStopped(ctx, "watchdog", "killed", "ABRT"); err == nil || !strings.Contains(err.Error(), "activating the good slot a") {
		t.Fatalf("agent-stopped with the good slot failing to activate: %v", err)
	}
	s := state(t, m)
	if s.Active != "b" || s.Slots["b"].Bad == "" || s.Pending != "" {
		t.Fatalf("the state after a failed rollback:\n%s", Describe(s))
	}
	// Once the good slot activates, the backstop finishes the job.
	sys.failSlot = ""
	must(t, m.Rollback(ctx, RollbackOptions{Auto: true, Agent: AgentRecover}))
	if s := state(t, m); s.Active != "a" {
		t.Fatalf("after the backstop:\n%s", Describe(s))
	}
}

// TestSystemdTreeDigest: the digest follows the content, names, modes and
// link targets of usr/lib/systemd, and nothing outside it.
func TestSystemdTreeDigest(t *testing.T) {
	mk := func(unit string, mode os.FileMode, link, other string) string {
		root := t.TempDir()
		dir := filepath.Join(root, "usr", "lib", "systemd", "system")
		if err := os.MkdirAll(filepath.Join(dir, "sockets.target.wants"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "aegisbpf.service"), []byte(unit), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(link, filepath.Join(dir, "sockets.target.wants", "aegisbpf-metrics.socket")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "usr", "other"), []byte(other), 0o644); err != nil {
			t.Fatal(err)
		}
		return root
	}
	digest := func(root string) string {
		d, err := systemdTreeDigest(root)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := digest(mk("[Service]\n", 0o644, "../aegisbpf-metrics.socket", "a"))
	if d := digest(mk("[Service]\n", 0o644, "../aegisbpf-metrics.socket", "b")); d != base {
		t.Error("a file outside usr/lib/systemd changed the digest")
	}
	for name, root := range map[string]string{
		"content": mk("[Service]\nExecStartPost=x\n", 0o644, "../aegisbpf-metrics.socket", "a"),
		"mode":    mk("[Service]\n", 0o600, "../aegisbpf-metrics.socket", "a"),
		"link":    mk("[Service]\n", 0o644, "../other.socket", "a"),
	} {
		if digest(root) == base {
			t.Errorf("a change of %s left the digest alone", name)
		}
	}
	empty, err := systemdTreeDigest(t.TempDir())
	if err != nil || empty == base {
		t.Errorf("a layer without usr/lib/systemd: %q, %v", empty, err)
	}
}
