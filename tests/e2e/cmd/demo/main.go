// Command demo is "make demo": it builds the agent, a demo signing key, three
// signed layers and the appliance, boots it under qemu, and narrates what
// it checks: BPF LSM active, enforcement from boot, a denied and an allowed
// read, the journal event, a metrics scrape, an update to v2, a bad v3
// rolled back on its own, and the slots at the end. It exits non-zero if
// any check did not behave.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/tests/e2e"
)

const (
	protected = "/etc/shadow"           // denied by the example policy
	payroll   = "/etc/demo/payroll.csv" // denied from v2 on
	allowed   = "/etc/hostname"         // never denied
	exampleP  = "policy/examples/hardened-host.toml"
	boldOn    = "\033[1m"
	boldOff   = "\033[0m"
	failMark  = "\033[31mFAIL\033[0m"
	passMark  = "\033[32mok\033[0m"
	v3Fault   = "ExecStartPost=/usr/bin/systemctl kill --kill-whom=main --signal=SIGSTOP aegisbpf.service"
	probation = "10s"
)

// motd greets 'make demo-shell' on the demo's appliance.
const motd = `
AegisBPF demo appliance (a test machine: root has no password).
The agent runs from signed layer slots and enforces policy/examples/hardened-host.toml.
Try:
  cat /etc/shadow                  denied (EPERM), even for root
  journalctl -u aegisbpf -f        events as they happen
  aegisbpf metrics | grep deny     Prometheus text from the socket
  aegisbpf status                  what the kernel enforces
  aegisbpf slot status             the A/B slots and their history
Leave with 'poweroff' (or Ctrl-A x).

`

type demo struct {
	ctx    context.Context
	vm     *e2e.VM
	start  time.Time
	checks []string
	failed int
	step   int
}

func main() {
	keep := flag.String("out", "build/demo", "where the demo's key, layers and appliance go (`DIR`)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{ctx: ctx, start: time.Now()}
	err := d.run(*keep)
	d.summary(err)
	if err != nil || d.failed > 0 {
		os.Exit(1)
	}
}

func (d *demo) title(format string, args ...any) {
	d.step++
	fmt.Printf("\n%s== %d. %s%s\n", boldOn, d.step, fmt.Sprintf(format, args...), boldOff)
}

func (d *demo) say(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

// check records one behaviour and prints it.
func (d *demo) check(ok bool, what string) {
	mark := passMark
	if !ok {
		mark, d.failed = failMark, d.failed+1
	}
	d.checks = append(d.checks, fmt.Sprintf("[%s] %s", mark, what))
	fmt.Printf("   [%s] %s\n", mark, what)
}

// progress prints the elapsed time every 5 s until done is called.
func progress(what string) (done func()) {
	t0 := time.Now()
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				fmt.Printf("   ... %s: %s\n", what, time.Since(t0).Round(time.Second))
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
		fmt.Printf("   %s: done in %s\n", what, time.Since(t0).Round(100*time.Millisecond))
	}
}

// sh runs cmd in the guest and prints it with its output.
func (d *demo) sh(cmd string) string {
	fmt.Printf("   %s# %s%s\n", boldOn, cmd, boldOff)
	res, err := d.vm.Exec(d.ctx, cmd)
	if err != nil {
		d.check(false, "the guest answers: "+err.Error())
		return ""
	}
	out := strings.TrimRight(string(res.Stdout)+string(res.Stderr), "\n")
	for line := range strings.SplitSeq(out, "\n") {
		if line != "" {
			fmt.Printf("     %s\n", line)
		}
	}
	return out
}

func (d *demo) quiet(cmd string) string {
	res, err := d.vm.Exec(d.ctx, cmd)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(res.Stdout))
}

func (d *demo) waitFor(limit time.Duration, ok func() bool) (time.Duration, bool) {
	t0 := time.Now()
	for time.Since(t0) < limit {
		if ok() {
			return time.Since(t0), true
		}
		time.Sleep(time.Second)
	}
	return time.Since(t0), false
}

func withSerial(policy string, serial int) string {
	return regexp.MustCompile(`(?m)^serial = \d+$`).ReplaceAllString(policy, fmt.Sprintf("serial = %d", serial))
}

func (d *demo) run(out string) error {
	repo, err := e2e.RepoRoot()
	if err != nil {
		return err
	}
	out, _ = filepath.Abs(filepath.Join(repo, out))
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	example, err := os.ReadFile(filepath.Join(repo, exampleP))
	if err != nil {
		return err
	}
	v1Policy := string(example)
	v2Policy := withSerial(v1Policy, 2) + "\n# v2: payroll data joins the protected files.\n[[file]]\nid = \"protect-payroll\"\npaths = [\"" + payroll + "\"]\naccess = \"read\"\n"
	v3Policy := withSerial(v2Policy, 3)

	d.title("Build: the agent, a demo signing key, three signed layers, the appliance")
	done := progress("building the static agent")
	kit, err := e2e.NewKit(d.ctx, out)
	done()
	if err != nil {
		return err
	}
	keyNote := []byte("DEMO KEY, NOT FOR PRODUCTION: generated by 'make demo' on " + time.Now().UTC().Format(time.RFC3339) +
		"; its private half lived only in this process and in the layer build inputs under " + out + "/inputs.\n")
	os.WriteFile(filepath.Join(out, "demo-key.pub"), kit.PubPEM(), 0o644)
	os.WriteFile(filepath.Join(out, "DEMO-KEY-README"), keyNote, 0o644)
	d.say("demo signing key (NOT FOR PRODUCTION): %s", filepath.Join(out, "demo-key.pub"))
	layers := map[string]string{}
	for _, r := range []e2e.Release{
		{Version: "1", Serial: 1, Policy: v1Policy},
		{Version: "2", Serial: 2, Policy: v2Policy},
		{Version: "3", Serial: 3, Policy: v3Policy, ServiceExtra: v3Fault},
	} {
		dir, err := kit.Layer(d.ctx, r)
		if err != nil {
			return err
		}
		layers[r.Version] = dir
		d.say("layer v%s (serial %d): erofs + dm-verity + signed manifest in %s", r.Version, r.Serial, dir)
	}
	d.say("v1 enforces %s; v2 adds %s; v3 is v2 with an agent that hangs after start", exampleP, payroll)
	cfg, err := kit.ApplianceConfig(d.ctx, e2e.SlottedConfig{
		First: layers["1"], Probation: probation,
		RootFiles: []appliance.File{
			{Path: payroll, Mode: 0o644, Data: []byte("name,salary\nalice,1\n")},
			{Path: "/etc/motd", Mode: 0o644, Data: []byte(motd)},
		},
		Updates: map[string]string{"v2": layers["2"], "v3": layers["3"]},
	})
	if err != nil {
		return err
	}
	cfg.OutDir = filepath.Join(out, "appliance")
	cfg.Log = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	done = progress("building the appliance (Debian 12 root from the cache; the first run takes minutes)")
	a, err := e2e.BuildAppliance(d.ctx, cfg)
	done()
	if err != nil {
		return err
	}
	d.say("appliance: read-only erofs root, /var with layer v1 preinstalled in slot a, kernel %s", a.KernelRelease)

	d.title("Boot the appliance under qemu (TCG, no KVM needed)")
	work, err := os.MkdirTemp("", "aegisbpf-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	done = progress("booting")
	d.vm, err = e2e.Start(d.ctx, e2e.Config{Appliance: a, WorkDir: work, Timeout: 20 * time.Minute})
	if err != nil {
		done()
		return err
	}
	defer d.vm.Close()
	if _, err := d.vm.WaitReady(d.ctx); err != nil {
		done()
		return err
	}
	// The agent is what the demo is about: go on once it is enforcing,
	// not when the last getty has started.
	took, ok := d.waitFor(5*time.Minute, func() bool { return d.quiet("systemctl is-active aegisbpf.service") == "active" })
	done()
	if !ok {
		return fmt.Errorf("the agent was not active %s after the guest came up:\n%s", took.Round(time.Second),
			d.quiet("systemctl status --no-pager -n 20 aegisbpf-slot-activate.service aegisbpf.service"))
	}
	d.say("the agent is active; systemd says the system is %s", d.quiet("systemctl is-system-running"))

	d.title("Kernel and LSM")
	d.sh("uname -r")
	lsm := d.sh("cat /sys/kernel/security/lsm")
	d.check(strings.Contains(lsm, "bpf"), "BPF LSM is active")
	// Phase 0 of docs/ROLLOUT_PLAN.md: the host's own check.
	doc := d.sh("aegisbpf doctor")
	d.check(strings.Contains(doc, " 0 FAIL"), "aegisbpf doctor finds nothing that fails")

	d.title("Enforcement from boot")
	d.sh("systemctl status --no-pager -n 0 aegisbpf.service | head -6")
	times := strings.Fields(d.quiet("systemctl show -p ActiveEnterTimestampMonotonic --value aegisbpf.service sysinit.target"))
	d.check(len(times) == 2 && times[0] <= times[1] && len(times[0]) <= len(times[1]),
		"the agent was READY before sysinit.target, so before every ordinary service")
	d.sh("systemd-analyze critical-chain aegisbpf.service --no-pager | tail -4")

	d.title("A denied read and an allowed one")
	out1 := d.sh("cat " + protected)
	d.check(strings.Contains(out1, "Operation not permitted"), "reading "+protected+" is denied (EPERM), even for root")
	out2 := d.sh("cat " + allowed)
	d.check(out2 != "" && !strings.Contains(out2, "denied") && !strings.Contains(out2, "not permitted"), "reading "+allowed+" works")
	out3 := d.sh("cat " + payroll)
	d.check(strings.Contains(out3, "salary"), payroll+" is readable under v1")

	d.title("The event in the journal")
	// Denials are written once per aggregation interval (5 s).
	const journal = "journalctl -u aegisbpf.service --no-pager -o cat MESSAGE_ID=ef60429a610b4c96b92c4c9dff7d4d42 | tail -3"
	d.waitFor(15*time.Second, func() bool { return strings.Contains(d.quiet(journal), "protect-shadow") })
	ev := d.sh(journal)
	d.check(strings.Contains(ev, "protect-shadow"), "the denial is in the journal with its rule")

	d.title("Metrics over the socket-activated unix socket")
	m := d.sh("aegisbpf metrics | grep -E '^aegisbpf_(rule_decisions_total\\{action=\"deny\"|policy_serial|programs_attached|build_info)' | head -8")
	d.check(strings.Contains(m, "protect-shadow"), "the denial is counted in Prometheus text")

	d.title("Update to v2: install into the idle slot, switch, activate, probation")
	d.sh("aegisbpf slot install " + e2e.UpdatesDir + "/v2")
	d.sh("aegisbpf slot switch")
	d.sh("aegisbpf slot activate")
	// Cheap checks first: under TCG every command the demo runs in the
	// guest takes CPU from what it waits for.
	took, ok = d.waitFor(3*time.Minute, func() bool {
		return d.quiet("systemctl is-active "+slot.ProbationUnit) != "active" &&
			strings.Contains(d.quiet("grep -c . /etc/demo/payroll.csv 2>&1"), "not permitted") &&
			strings.Contains(d.quiet(e2e.BaseAgent+" slot status"), "active, good")
	})
	d.check(ok, fmt.Sprintf("v2 passed probation (%s) and was marked good (%s)", probation, took.Round(time.Second)))
	out4 := d.sh("cat " + payroll)
	d.check(strings.Contains(out4, "Operation not permitted"), "v2's new rule is enforced: "+payroll+" is denied")

	d.title("A bad update: v3's agent hangs after start")
	d.sh("aegisbpf slot install " + e2e.UpdatesDir + "/v3")
	d.sh("aegisbpf slot switch")
	d.quiet("rm -f /run/demo-probe.*; systemd-run --unit=demo-probe --quiet sh -c 'while :; do cat " + protected + " >/dev/null 2>&1 && echo OPENED >>/run/demo-probe.opened; echo t >>/run/demo-probe.ticks; sleep 0.05; done'")
	d.say("a loop now tries to read %s every 50 ms", protected)
	t0 := time.Now()
	d.sh("aegisbpf slot activate")
	d.say("v3 is active on probation; systemd's watchdog (10 s) will find its agent hung")
	done = progress("waiting for the automatic rollback")
	_, ok = d.waitFor(3*time.Minute, func() bool {
		return strings.Contains(d.quiet("systemctl show -p StatusText --value aegisbpf.service"), "policy serial 2") &&
			d.quiet("systemctl is-active aegisbpf.service") == "active" &&
			strings.Contains(d.quiet(e2e.BaseAgent+" slot status"), "bad: agent failed")
	})
	done()
	d.check(ok, fmt.Sprintf("the host rolled back to v2 on its own, agent enforcing again %s after activate", time.Since(t0).Round(time.Second)))
	d.quiet("systemctl stop demo-probe.service")
	opened := d.quiet("cat /run/demo-probe.opened 2>/dev/null | wc -l")
	ticks := d.quiet("cat /run/demo-probe.ticks 2>/dev/null | wc -l")
	d.check(opened == "0" && ticks != "0", fmt.Sprintf("%s was never readable during the episode (%s of %s attempts succeeded)", protected, opened, ticks))
	d.sh("journalctl -b --no-pager -o cat -u aegisbpf.service -u aegisbpf-slot-rollback.service | grep -E '^(rolling back|activated slot)|Watchdog timeout' | tail -4")

	d.title("The slots at the end")
	st := d.sh("aegisbpf slot status")
	d.check(strings.Contains(st, "active, good") && strings.Contains(st, "bad: agent failed on probation"), "slot status tells the story")
	sm := d.sh("aegisbpf metrics | grep -E '^aegisbpf_slot_(active_serial|bad|last_rollback)'")
	d.check(strings.Contains(sm, "aegisbpf_slot_bad 1") && strings.Contains(sm, "aegisbpf_slot_last_rollback_timestamp_seconds"),
		"the metrics report the rollback (alert AegisBPFSlotRolledBack)")
	// The example policy must not break the host: no unit failed
	// (logins, the root user's systemd manager) through all of the above.
	failed := d.sh("systemctl --failed --no-legend --plain; systemctl is-system-running")
	d.check(strings.TrimSpace(failed) == "running", "no unit failed under the example policy: systemd says the system is running")
	// The VM is disposable (its /var disk is a copy in a temporary
	// directory): Close stops qemu, no need to wait for a clean shutdown.
	return nil
}

func (d *demo) summary(err error) {
	fmt.Printf("\n%s== Summary%s\n", boldOn, boldOff)
	for _, c := range d.checks {
		fmt.Println("   " + c)
	}
	if err != nil {
		fmt.Printf("   [%s] the demo stopped: %v\n", failMark, err)
	}
	verdict := "PASS"
	if err != nil || d.failed > 0 {
		verdict = fmt.Sprintf("FAIL (%d of %d checks failed)", d.failed, len(d.checks))
	}
	fmt.Printf("\ndemo: %s in %s\n", verdict, time.Since(d.start).Round(time.Second))
	fmt.Println("Next: 'make demo-shell' boots the same appliance with a root shell on the console.")
}
