package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/tests/fleet/infra"
)

// The update channel of TestUpdateFromRegistry: its name is the OCI tag
// in the repository regRepo of the test's registry.
const (
	regChannel = "stable"
	regRepo    = "aegisbpf"
	updateEnv  = "/etc/aegisbpf/update.env"
)

// TestUpdateFromRegistry rolls two appliances forward from a signed
// channel in a real OCI registry (distribution, on the host's loopback),
// which they reach through qemu's user network, with the base OS's
// updater: both install v2 and enforce its policy; then the channel
// offers v3, whose agent hangs after start: the held host's timer unit
// installs nothing, the other host installs it, its watchdog fails it,
// the slots roll back to v2 without a gap in enforcement, and the
// updater does not try v3 again.
func TestUpdateFromRegistry(t *testing.T) {
	RequireE2E(t)
	tl := &timeline{t0: time.Now()}
	defer func() { t.Logf("timeline:\n%s", tl) }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	kit := KitT(t)
	v1 := LayerT(t, kit, Release{Version: "1", Serial: 1, Policy: policyV1(1)})
	v2 := LayerT(t, kit, Release{Version: "2", Serial: 2, Policy: policyV2(2)})
	// v3's agent stops feeding its watchdog: once READY, PID 1 stops it.
	v3 := LayerT(t, kit, Release{Version: "3", Serial: 3, Policy: policyV2(3),
		ServiceExtra: "ExecStartPost=/usr/bin/systemctl kill --kill-whom=main --signal=SIGSTOP aegisbpf.service"})
	tl.mark(t, "agent and layers 1, 2, 3 built")

	regLog, err := os.Create(filepath.Join(t.TempDir(), "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := infra.StartRegistry(ctx, t.TempDir(), regLog)
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Stop(); err != nil {
			t.Errorf("stopping the registry: %v", err)
		}
		regLog.Close()
		if t.Failed() {
			if data, err := os.ReadFile(regLog.Name()); err == nil {
				t.Logf("registry log (tail):\n%s", tail(string(data), 30))
			}
		}
	})
	_, port, ok := strings.Cut(reg.Addr, ":")
	if !ok {
		t.Fatalf("registry address %q has no port", reg.Addr)
	}
	// The guest sees the host's loopback at UserNetHost.
	location := "oci://" + UserNetHost + ":" + port + "/" + regRepo + ":" + regChannel
	tl.mark(t, "registry listening on %s; hosts follow %s", reg.Addr, location)

	// The channel location is baked into the base OS, where an operator
	// puts it, for the timer's unit (which needs the file).
	cfg, err := kit.ApplianceConfig(ctx, SlottedConfig{First: v1, Probation: "5s",
		RootFiles: append(protectedFiles(), appliance.File{Path: updateEnv, Mode: 0o644, Data: []byte("AEGISBPF_CHANNEL=" + location + "\n")})})
	if err != nil {
		t.Fatal(err)
	}
	app := BuildT(t, cfg)
	tl.mark(t, "appliance built")

	ring := keys.Ring{keys.ID(kit.Pub): kit.Pub}
	ch := &update.Channel{FormatVersion: update.ChannelFormat, Name: regChannel, Releases: []update.Release{}}
	publish := func(dir string) {
		t.Helper()
		t0 := time.Now()
		r, src, err := update.NewRelease(dir, ring, []float64{1}, t0)
		if err != nil {
			t.Fatal(err)
		}
		next := *ch
		next.Releases = append(slices.Clone(ch.Releases), *r)
		next.Serial++
		next.Issued = t0.UTC().Truncate(time.Second)
		next.Expires = next.Issued.Add(time.Hour)
		if err := update.Publish(ctx, &next, kit.Key, update.Outputs{OCI: reg.Addr + "/" + regRepo}, map[string]string{r.Version: src}); err != nil {
			t.Fatalf("publishing channel serial %d: %v", next.Serial, err)
		}
		ch = &next
		tl.mark(t, "channel %s serial %d published with %s (one wave, open to the whole fleet) in %s",
			ch.Name, ch.Serial, r.Version, time.Since(t0).Round(time.Millisecond))
	}
	publish(v2)

	// Both VMs boot at once: each TCG VM keeps one host core busy.
	names := []string{"vm1", "vm2"}
	guests := map[string]*slotGuest{}
	for _, n := range names {
		guests[n] = &slotGuest{vm: startVM(t, app, n, Config{UserNet: true}), ctx: ctx}
	}
	tl.mark(t, "vm1 and vm2 started")
	v1Denies := map[string]bool{fileBoth: true, fileV1Only: true}
	v2Denies := map[string]bool{fileBoth: true, fileV2Only: true}

	onEach(t, "v2 from the registry", names, func(t *testing.T, name string) {
		g := guests[name]
		g.t = t
		vm := g.vm
		if _, err := vm.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := vm.WaitSystem(ctx); err != nil {
			t.Fatal(err)
		} else if st != "running" {
			t.Errorf("system %s: %s", st, g.run("systemctl --failed --no-legend"))
		}
		tl.mark(t, "%s booted (system running)", name)
		dev, err := vm.UpUserNet(ctx, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tl.mark(t, "%s: %s up with %s", name, dev, UserNetGuest)
		if s := g.state(); s.Active != "a" || s.Good != "a" || s.Slots["a"].Version != "1" {
			t.Fatalf("first boot: active %q good %q", s.Active, s.Good)
		}
		g.expectEnforcing("v1", v1Denies)

		res := g.update("apply", "--channel", location)
		tl.mark(t, "%s: update apply 1 → 2 took %s (exit %d)", name, res.Took.Round(100*time.Millisecond), res.Exit)
		t.Logf("update apply:\n%s%s", res.Stdout, res.Stderr)
		if res.Exit != 0 || !strings.Contains(string(res.Stdout), "2 installed and kept") {
			t.Fatalf("update apply: exit %d, want 0 and %q", res.Exit, "2 installed and kept")
		}
		tl.mark(t, "%s: slot history of 2 (guest clock, from its install):\n%s", name, g.episode("2"))
		s := g.state()
		if act := s.Slots[s.Active]; act == nil || act.Version != "2" || s.Good != s.Active || s.Pending != "" {
			t.Fatalf("after the update: active %q good %q pending %q\n%s", s.Active, s.Good, s.Pending, g.run(BaseAgent+" slot status"))
		}
		if got := g.agentSerial(); got != "2" {
			t.Errorf("the agent enforces policy serial %q, want 2", got)
		}
		g.expectEnforcing("v2", v2Denies)
		g.expectMetrics(`aegisbpf_update_current_info{version="2"} 1`, `aegisbpf_update_installs_total{version="2"} 1`,
			`aegisbpf_update_last_check_result{result="installed"} 1`, `aegisbpf_update_channel_serial 1`)
	})

	publish(v3)
	onEach(t, "v3 from the registry", names, func(t *testing.T, name string) {
		g := guests[name]
		g.t = t
		if name == "vm1" {
			// A held host: the base OS's unit (as its timer starts it,
			// with the channel from update.env) checks and installs
			// nothing.
			g.update("hold")
			t0 := time.Now()
			res, err := g.vm.Exec(ctx, "systemctl start aegisbpf-update.service")
			if err != nil {
				t.Fatal(err)
			}
			show := g.run("systemctl show -p Result -p ExecMainStatus aegisbpf-update.service")
			tl.mark(t, "vm1 (held): aegisbpf-update.service ran in %s (exit %d; %s)", time.Since(t0).Round(100*time.Millisecond), res.Exit,
				strings.ReplaceAll(show, "\n", ", "))
			if res.Exit != 0 || !strings.Contains(show, "Result=success") {
				t.Errorf("aegisbpf-update.service: systemctl exit %d, %s\n%s", res.Exit, show, res.Stderr)
			}
			journal := g.run("journalctl -b --no-pager -o cat -u aegisbpf-update.service")
			t.Logf("aegisbpf-update.service:\n%s", journal)
			if !strings.Contains(journal, "held: 2 would install 3") {
				t.Errorf("the unit's journal does not say it held back 3")
			}
			if st := g.updateState(); st.LastCheck == nil || st.LastCheck.Result != update.ResultHeld || st.Available != "3" {
				t.Errorf("update state: %+v, want the last check held with 3 available", st)
			}
			if s := g.state(); s.Slots[s.Active].Version != "2" || s.Good != s.Active || s.Pending != "" {
				t.Errorf("slots changed on a held host:\n%s", g.run(BaseAgent+" slot status"))
			}
			g.expectMetrics(`aegisbpf_update_held 1`, `aegisbpf_update_last_check_result{result="held"} 1`,
				`aegisbpf_update_available_info{version="3"} 1`, `aegisbpf_update_channel_serial 2`)
			return
		}

		stop := g.startProbe(fileV2Only)
		res := g.update("apply", "--channel", location)
		tl.mark(t, "vm2: update apply 2 → 3 ended in %s (exit %d): activation, watchdog, verdict", res.Took.Round(100*time.Millisecond), res.Exit)
		t.Logf("update apply:\n%s%s", res.Stdout, res.Stderr)
		if res.Exit == 0 || !strings.Contains(string(res.Stderr), "3 rolled back: agent failed on probation") {
			t.Errorf("update apply of the bad release: exit %d, want a failure saying %q", res.Exit, "3 rolled back: agent failed on probation")
		}
		t0 := time.Now()
		g.waitFor("the v2 agent enforcing again", 2*time.Minute, func() bool { return g.agentActive() && g.agentSerial() == "2" })
		tl.mark(t, "vm2: v2's agent active again %s after apply returned; slot history of 3 (guest clock, from its install):\n%s",
			time.Since(t0).Round(100*time.Millisecond), g.episode("3"))
		opened, ticks := stop()
		if opened != 0 || ticks == 0 {
			t.Errorf("the file v2 and v3 deny was read %d times in %d attempts during the episode", opened, ticks)
		}
		t.Logf("probe of %s: %d reads, all denied", fileV2Only, ticks)
		s := g.state()
		var bad string
		for _, sl := range s.Slots {
			if sl != nil && sl.Version == "3" {
				bad = sl.Bad
			}
		}
		if act := s.Slots[s.Active]; act == nil || act.Version != "2" || s.Good != s.Active || s.Pending != "" ||
			!strings.Contains(bad, "agent failed on probation (result watchdog") {
			t.Errorf("after the rollback, want 2 active and good and 3 bad for its watchdog:\n%s", g.run(BaseAgent+" slot status"))
		}
		g.expectEnforcing("v2 after the rollback", v2Denies)
		g.expectMetrics(`aegisbpf_update_current_info{version="2"} 1`, `aegisbpf_update_installs_total{version="3"} 1`,
			`aegisbpf_update_rollbacks_total{version="3"} 1`, `aegisbpf_update_last_check_result{result="rolled-back"} 1`)

		// The rolled-back release is not tried again.
		res = g.update("apply", "--channel", location)
		tl.mark(t, "vm2: second update apply took %s (exit %d)", res.Took.Round(100*time.Millisecond), res.Exit)
		if res.Exit != 0 || !strings.Contains(string(res.Stdout), "2 is up to date with channel stable (serial 2)") {
			t.Errorf("second update apply: exit %d\n%s%s", res.Exit, res.Stdout, res.Stderr)
		}
		g.expectMetrics(`aegisbpf_update_last_check_result{result="up-to-date"} 1`, `aegisbpf_update_installs_total{version="3"} 1`)
	})
}

// update runs an update verb of the base OS's agent (the one the timer's
// unit runs) and fails t only when the guest is gone.
func (g *slotGuest) update(args ...string) *Result {
	g.t.Helper()
	res, err := g.vm.Exec(g.ctx, BaseAgent+" update "+strings.Join(args, " "))
	if err != nil {
		g.t.Fatal(err)
	}
	return res
}

func (g *slotGuest) updateState() *update.State {
	g.t.Helper()
	s, err := update.ParseState([]byte(g.run(BaseAgent + " update status")))
	if err != nil {
		g.t.Fatalf("update status: %v", err)
	}
	return s
}

// episode is the slot history from the last install of version on, each
// event at its offset from that install by the guest's clock.
func (g *slotGuest) episode(version string) string {
	g.t.Helper()
	h := g.state().History
	start := -1
	for i, e := range h {
		if e.Action == "install" && strings.HasPrefix(e.Detail, version+" ") {
			start = i
		}
	}
	if start < 0 {
		g.t.Fatalf("the slot history has no install of %s", version)
	}
	var b strings.Builder
	for _, e := range h[start:] {
		fmt.Fprintf(&b, "\t%+6.1fs  %-9s %s  %s\n", e.Time.Sub(h[start].Time).Seconds(), e.Action, e.Slot, e.Detail)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// expectMetrics checks that the agent's metrics hold each line.
func (g *slotGuest) expectMetrics(lines ...string) {
	g.t.Helper()
	m := g.run("aegisbpf metrics | grep '^aegisbpf_update_'")
	for _, l := range lines {
		if !slices.Contains(strings.Split(m, "\n"), l) {
			g.t.Errorf("metrics lack %q:\n%s", l, m)
		}
	}
}

// onEach runs fn for every VM name at once, as parallel subtests of one
// step; the test stops when any fails.
func onEach(t *testing.T, step string, names []string, fn func(t *testing.T, name string)) {
	t.Helper()
	ok := t.Run(step, func(t *testing.T) {
		for _, n := range names {
			t.Run(n, func(t *testing.T) {
				t.Parallel()
				fn(t, n)
			})
		}
	})
	if !ok {
		t.FailNow()
	}
}

// startVM launches a VM named name for the logs, without waiting for it.
func startVM(t *testing.T, a *appliance.Appliance, name string, cfg Config) *VM {
	t.Helper()
	cfg.Log = testLogger(t).With("vm", name)
	return LaunchT(t, a, cfg)
}

// timeline collects what happened when, from every subtest.
type timeline struct {
	t0    time.Time
	mu    sync.Mutex
	lines []string
}

func (tl *timeline) mark(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%6.1fs  %s", time.Since(tl.t0).Seconds(), fmt.Sprintf(format, args...))
	tl.mu.Lock()
	tl.lines = append(tl.lines, line)
	tl.mu.Unlock()
	t.Log(line)
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.lines, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestQemuArgsUserNet(t *testing.T) {
	a := &appliance.Appliance{Dir: "/a", Root: "root.erofs", Var: "var.img", Kernel: "vmlinuz", Initrd: "initrd.img"}
	for _, on := range []bool{false, true} {
		cfg := Config{Appliance: a, WorkDir: "/w", UserNet: on}
		if err := cfg.defaults(); err != nil {
			t.Fatal(err)
		}
		args := strings.Join(qemuArgs(cfg, "v", "c", "q"), " ")
		want := "-netdev user,id=n0,restrict=off -device virtio-net-pci,netdev=n0,mac=" + UserNetMAC
		if got := strings.Contains(args, want); got != on {
			t.Errorf("UserNet %v: args contain %q: %v\n%s", on, want, got, args)
		}
		if !on && strings.Contains(args, "-netdev") {
			t.Errorf("a NIC without UserNet: %s", args)
		}
	}
}
