package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// Files the test policies protect, in the base root.
const (
	fileBoth   = "/etc/aegis/both"    // denied by every version
	fileV1Only = "/etc/aegis/v1-only" // denied by v1 only
	fileV2Only = "/etc/aegis/v2-only" // denied by v2 and later
)

func protectedFiles() []appliance.File {
	var out []appliance.File
	for _, p := range []string{fileBoth, fileV1Only, fileV2Only} {
		out = append(out, appliance.File{Path: p, Mode: 0o644, Data: []byte("secret " + p + "\n")})
	}
	return out
}

func policyV1(serial uint64) string {
	return DenyReads(serial, [2]string{"both", fileBoth}, [2]string{"v1-only", fileV1Only})
}

func policyV2(serial uint64) string {
	return DenyReads(serial, [2]string{"both", fileBoth}, [2]string{"v2-only", fileV2Only})
}

// slotGuest wraps a VM with test helpers.
type slotGuest struct {
	t   *testing.T
	vm  *VM
	ctx context.Context
}

func (g *slotGuest) run(cmd string) string {
	g.t.Helper()
	out, err := g.vm.Run(g.ctx, cmd)
	if err != nil {
		g.t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(out)
}

// doctor runs `aegisbpf doctor --json` in the guest: an appliance built
// as documented passes every check that matters for enforcement and slots.
func (g *slotGuest) doctor() {
	g.t.Helper()
	res, err := g.vm.Exec(g.ctx, "aegisbpf doctor --json")
	if err != nil {
		g.t.Fatal(err)
	}
	text, _ := g.vm.Run(g.ctx, "aegisbpf doctor")
	g.t.Logf("aegisbpf doctor (exit %d):\n%s", res.Exit, text)
	var r struct {
		Status string
		Checks []struct{ Name, Status, Detail string }
	}
	if err := json.Unmarshal(res.Stdout, &r); err != nil {
		g.t.Fatalf("doctor --json: %v\n%s", err, res.Stdout)
	}
	if res.Exit != 0 || r.Status == "fail" {
		g.t.Errorf("doctor: exit %d, status %q", res.Exit, r.Status)
	}
	must := map[string]bool{"kernel": true, "btf": true, "lsm": true, "lsm-program": true, "bpffs": true, "cgroup2": true, "ringbuf": true,
		"systemd": true, "sysext": true, "dm-verity": true, "erofs": true, "trusted-keys": true, "policy": true}
	for _, c := range r.Checks {
		if must[c.Name] && c.Status != "ok" {
			g.t.Errorf("doctor check %s: %s (%s)", c.Name, c.Status, c.Detail)
		}
		delete(must, c.Name)
	}
	if len(must) != 0 {
		g.t.Errorf("doctor ran no check named %v", must)
	}
}

func (g *slotGuest) state() *slot.State {
	g.t.Helper()
	var s slot.State
	if err := json.Unmarshal([]byte(g.run(BaseAgent+" slot status --json")), &s); err != nil {
		g.t.Fatalf("slot status --json: %v", err)
	}
	return &s
}

// readable reports whether root can read p in the guest; any error but
// EPERM fails the test.
func (g *slotGuest) readable(p string) bool {
	g.t.Helper()
	out := g.run("cat " + p + " >/dev/null 2>/tmp/e2e-read.err && echo ok || cat /tmp/e2e-read.err")
	if out == "ok" {
		return true
	}
	if !strings.Contains(out, "Operation not permitted") {
		g.t.Fatalf("reading %s: %q, want success or EPERM", p, out)
	}
	return false
}

// expectEnforcing checks which of the protected files are denied.
func (g *slotGuest) expectEnforcing(label string, denied map[string]bool) {
	g.t.Helper()
	for _, p := range []string{fileBoth, fileV1Only, fileV2Only} {
		if got := !g.readable(p); got != denied[p] {
			g.t.Errorf("%s: %s denied = %v, want %v", label, p, got, denied[p])
		}
	}
}

func (g *slotGuest) waitFor(what string, limit time.Duration, ok func() bool) time.Duration {
	g.t.Helper()
	t0 := time.Now()
	for !ok() {
		if time.Since(t0) > limit {
			g.t.Fatalf("%s: not within %s\nslots:\n%s\nunit:\n%s\njournal:\n%s", what, limit,
				g.run(BaseAgent+" slot status"), g.run("systemctl cat aegisbpf.service | grep -E '^(#|Exec)'"),
				g.run("journalctl -b --no-pager -o short-monotonic -u aegisbpf.service -u 'aegisbpf-slot-*' | "+
					"grep -E 'systemd\\[1\\]|slot|rolling|activat|refresh|reload|msg=\"(agent starting|enforcing|policy verified|stopping)|level=(WARN|ERROR)' | tail -80"))
		}
		time.Sleep(time.Second)
	}
	return time.Since(t0)
}

func (g *slotGuest) agentActive() bool {
	return g.run("systemctl is-active aegisbpf.service || true") == "active"
}

func (g *slotGuest) agentSerial() string {
	st := g.run("systemctl show -p StatusText --value aegisbpf.service")
	_, rest, ok := strings.Cut(st, "policy serial ")
	if !ok {
		return ""
	}
	return strings.Fields(rest)[0]
}

// startProbe starts a loop in the guest reading p every 50 ms and
// counting successes; stop returns (successes, attempts).
func (g *slotGuest) startProbe(p string) (stop func() (int, int)) {
	g.t.Helper()
	g.run("rm -f /run/e2e-probe.*; systemd-run --unit=e2e-probe --quiet sh -c 'while :; do cat " + p +
		" >/dev/null 2>&1 && echo OPENED >>/run/e2e-probe.opened; echo t >>/run/e2e-probe.ticks; sleep 0.05; done'")
	return func() (int, int) {
		g.run("systemctl stop e2e-probe.service")
		opened, _ := strconv.Atoi(g.run("cat /run/e2e-probe.opened 2>/dev/null | wc -l"))
		ticks, _ := strconv.Atoi(g.run("cat /run/e2e-probe.ticks 2>/dev/null | wc -l"))
		return opened, ticks
	}
}

// stateDigest is the state file's SHA-256 and the slots' listing.
func (g *slotGuest) stateDigest() string {
	return g.run("sha256sum /var/lib/aegisbpf/state.json; ls -la /var/lib/aegisbpf/slots/*")
}

// TestSlotUpdates drives the A/B slots of a booted appliance through a
// good update (scenario 4), refused installs (7), a bad update rolled
// back on its own (5) and a reboot with a pending slot never marked good
// (6).
func TestSlotUpdates(t *testing.T) {
	RequireE2E(t)
	kit := KitT(t)
	v1 := LayerT(t, kit, Release{Version: "1", Serial: 1, Policy: policyV1(1)})
	v2 := LayerT(t, kit, Release{Version: "2", Serial: 2, Policy: policyV2(2)})
	// v3's agent stops feeding its watchdog: once READY, PID 1 stops it.
	v3 := LayerT(t, kit, Release{Version: "3", Serial: 3, Policy: policyV2(3),
		ServiceExtra: "ExecStartPost=/usr/bin/systemctl kill --kill-whom=main --signal=SIGSTOP aegisbpf.service"})
	v4 := LayerT(t, kit, Release{Version: "4", Serial: 4, Policy: policyV2(4)})
	_, otherKey, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := LayerT(t, kit, Release{Version: "5", Serial: 5, Policy: policyV2(5), Key: otherKey})
	tampered := tamperedCopy(t, v4, ".erofs", 1<<20)
	badSig := tamperedCopy(t, v4, ".manifest.json", 100) // the signature no longer matches

	vm := SlottedVM(t, kit, SlottedConfig{
		First: v1, Probation: "10s", RootFiles: protectedFiles(),
		Updates: map[string]string{"v1": v1, "v2": v2, "v3": v3, "v4": v4, "wrong-key": wrongKey, "tampered": tampered, "bad-sig": badSig},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	g := &slotGuest{t: t, vm: vm, ctx: ctx}
	if _, err := vm.WaitSystem(ctx); err != nil {
		t.Fatal(err)
	}
	if s := g.state(); s.Active != "a" || s.Good != "a" {
		t.Fatalf("first boot: active %q good %q", s.Active, s.Good)
	}
	g.expectEnforcing("v1", map[string]bool{fileBoth: true, fileV1Only: true})

	step(t, "doctor", func(t *testing.T) {
		g.t = t
		g.doctor()
	})

	step(t, "good update", func(t *testing.T) {
		g.t = t
		g.run("aegisbpf slot install " + UpdatesDir + "/v2")
		g.run("aegisbpf slot switch")
		t0 := time.Now()
		g.run("aegisbpf slot activate")
		if s := g.state(); !s.OnProbation() || s.Active != "b" {
			t.Fatalf("after activate: %+v", s)
		}
		t.Logf("activate (verify, dm-verity, mount, sysext, reload, agent restart): %s", time.Since(t0).Round(100*time.Millisecond))
		d := g.waitFor("v2 marked good", 3*time.Minute, func() bool { return g.state().Good == "b" })
		t.Logf("marked good %s after activate (probation 10s)", (time.Since(t0)).Round(time.Second))
		_ = d
		g.expectEnforcing("v2", map[string]bool{fileBoth: true, fileV2Only: true})
		if got := g.agentSerial(); got != "2" {
			t.Errorf("agent enforces policy serial %q, want 2", got)
		}
		if got := g.run("cat /usr/lib/extension-release.d/extension-release.aegisbpf | grep IMAGE_VERSION"); got != "IMAGE_VERSION=2" {
			t.Errorf("merged layer: %q", got)
		}
	})

	step(t, "refusals", func(t *testing.T) {
		g.t = t
		for _, c := range []struct{ name, dir, want string }{
			{"tampered image", "tampered", "layer is corrupt"},
			{"bad signature", "bad-sig", "not signed by a trusted key"},
			{"wrong key", "wrong-key", "not signed by a trusted key"},
			{"downgrade", "v1", "below serial 2 of the last good layer (anti-rollback)"},
		} {
			before := g.stateDigest()
			res, err := vm.Exec(ctx, "aegisbpf slot install "+UpdatesDir+"/"+c.dir)
			if err != nil {
				t.Fatal(err)
			}
			msg := strings.TrimSpace(string(res.Stderr))
			if res.Exit == 0 || !strings.Contains(msg, c.want) {
				t.Errorf("%s: exit %d, stderr %q; want a failure saying %q", c.name, res.Exit, msg, c.want)
			}
			if after := g.stateDigest(); after != before {
				t.Errorf("%s: the state or the slots changed:\n%s\n---\n%s", c.name, before, after)
			}
			t.Logf("%s: %s", c.name, msg)
		}
	})

	step(t, "bad update rolls back", func(t *testing.T) {
		g.t = t
		g.run("aegisbpf slot install " + UpdatesDir + "/v3")
		g.run("aegisbpf slot switch")
		stop := g.startProbe(fileBoth)
		t0 := time.Now()
		g.run("aegisbpf slot activate")
		d := g.waitFor("rollback to v2", 3*time.Minute, func() bool {
			s := g.state()
			return s.Active == "b" && s.Slots["a"] != nil && s.Slots["a"].Bad != "" && g.agentActive() && g.agentSerial() == "2"
		})
		t.Logf("v3 activated, failed its watchdog and rolled back to v2 with the agent enforcing again %s after activate", (time.Since(t0) - 0*d).Round(time.Second))
		opened, ticks := stop()
		if opened != 0 || ticks == 0 {
			t.Errorf("the file both versions deny was read %d times in %d attempts during the episode", opened, ticks)
		}
		t.Logf("probe: %d reads, all denied", ticks)
		s := g.state()
		if !strings.Contains(s.Slots["a"].Bad, "agent failed on probation (result watchdog") {
			t.Errorf("slot a is bad because %q, want the watchdog named", s.Slots["a"].Bad)
		}
		status := g.run("aegisbpf slot status")
		t.Logf("slot status:\n%s", status)
		g.expectEnforcing("v2 after the rollback", map[string]bool{fileBoth: true, fileV2Only: true})
		// The agent's metrics tell the monitoring what happened
		// (docs/monitoring/alerts.yml: AegisBPFSlotRolledBack).
		m := g.run("aegisbpf metrics | grep '^aegisbpf_slot_'")
		for _, want := range []string{"aegisbpf_slot_state_ok 1", "aegisbpf_slot_active_serial 2",
			"aegisbpf_slot_pending 0", "aegisbpf_slot_bad 1", "aegisbpf_slot_last_rollback_timestamp_seconds "} {
			if !strings.Contains(m+"\n", want) {
				t.Errorf("slot metrics lack %q:\n%s", want, m)
			}
		}
	})

	step(t, "reboot with an unconfirmed slot", func(t *testing.T) {
		g.t = t
		g.run("aegisbpf slot install " + UpdatesDir + "/v4")
		g.run("aegisbpf slot switch")
		g.run("aegisbpf slot activate && systemctl stop aegisbpf-slot-probation.service")
		if s := g.state(); !s.OnProbation() || s.Active != "a" {
			t.Fatalf("before the reboot: %s", slot.Describe(s))
		}
		if _, err := vm.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.WaitSystem(ctx); err != nil {
			t.Fatal(err)
		}
		s := g.state()
		if s.Active != "b" || s.Good != "b" || s.Pending != "" || !strings.Contains(s.Slots["a"].Bad, "not marked good within its tries") {
			t.Fatalf("after the reboot:\n%s", slot.Describe(s))
		}
		if !g.agentActive() || g.agentSerial() != "2" {
			t.Errorf("agent after the reboot: active %v, serial %q", g.agentActive(), g.agentSerial())
		}
		g.expectEnforcing("v2 after the reboot", map[string]bool{fileBoth: true, fileV2Only: true})
	})
	g.t = t
	if err := vm.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
}

// tamperedCopy copies the layer directory dir and flips one byte at off
// in its file ending in suffix.
func tamperedCopy(t *testing.T, dir, suffix string, off int64) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), suffix) {
			data[off%int64(len(data))] ^= 0x20
			done = true
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !done {
		t.Fatalf("no *%s in %s", suffix, dir)
	}
	return out
}

// TestSlotPowerLoss cuts the power in the middle of an install and in
// the middle of an activation (scenario 8): each next boot comes up
// enforcing on the good slot, and the state tells what happened.
func TestSlotPowerLoss(t *testing.T) {
	RequireE2E(t)
	kit := KitT(t)
	v1 := LayerT(t, kit, Release{Version: "1", Serial: 1, Policy: policyV1(1)})
	v2 := LayerT(t, kit, Release{Version: "2", Serial: 2, Policy: policyV2(2)})
	vm := SlottedVM(t, kit, SlottedConfig{First: v1, Probation: "10s", RootFiles: protectedFiles(),
		Updates: map[string]string{"v2": v2}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	g := &slotGuest{t: t, vm: vm, ctx: ctx}
	if _, err := vm.WaitSystem(ctx); err != nil {
		t.Fatal(err)
	}
	v1Denies := map[string]bool{fileBoth: true, fileV1Only: true}

	// cut runs cmd in the background and resets the machine without a
	// sync (sysrq b: the guest's power cut) as soon as trigger succeeds.
	cut := func(cmd, trigger string) {
		t.Helper()
		prev := vm.Boot()
		script := "(" + cmd + ") >/var/tmp/e2e-cut.log 2>&1 & until " + trigger + "; do :; done; echo b >/proc/sysrq-trigger"
		if _, err := vm.Exec(ctx, "setsid sh -c '"+script+"' </dev/null >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.WaitNextBoot(ctx, prev); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.WaitSystem(ctx); err != nil {
			t.Fatal(err)
		}
	}

	step(t, "during install", func(t *testing.T) {
		g.t = t
		cut("aegisbpf slot install "+UpdatesDir+"/v2", "ls -d /var/lib/aegisbpf/slots/.b.new-* >/dev/null 2>&1")
		s := g.state()
		if s.Active != "a" || s.Good != "a" || s.Pending != "" {
			t.Fatalf("after the cut:\n%s", slot.Describe(s))
		}
		t.Logf("after a cut during install:\n%s", slot.Describe(s))
		g.expectEnforcing("v1 after the cut", v1Denies)
		// The install can be redone.
		g.run("aegisbpf slot install " + UpdatesDir + "/v2")
		if s := g.state(); s.Slots["b"] == nil || s.Slots["b"].Version != "2" {
			t.Fatalf("install after the cut:\n%s", slot.Describe(s))
		}
		if left := g.run("ls -a /var/lib/aegisbpf/slots"); strings.Contains(left, ".new") {
			t.Errorf("leftovers of the cut install: %s", left)
		}
	})

	step(t, "during activation", func(t *testing.T) {
		g.t = t
		g.run("aegisbpf slot switch")
		cut("aegisbpf slot activate", "ls /dev/mapper/aegisbpf-b-* >/dev/null 2>&1")
		s := g.state()
		if s.Active != "a" || s.Good != "a" || s.Pending != "" || s.Slots["b"].Bad == "" {
			t.Fatalf("after the cut:\n%s", slot.Describe(s))
		}
		t.Logf("after a cut during activation:\n%s", slot.Describe(s))
		if !g.agentActive() || g.agentSerial() != "1" {
			t.Errorf("agent after the cut: active %v, serial %q", g.agentActive(), g.agentSerial())
		}
		g.expectEnforcing("v1 after the cut", v1Denies)
	})
	g.t = t
	if err := vm.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
}

// step runs a dependent subtest: the next steps make no sense after a
// failure, so the whole test stops.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}
