package e2e

import (
	"context"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance"
)

// TestAgentUnderSystemd boots a slotted appliance whose slot a holds a
// signed layer with the agent: the base OS's activation unit merges it at
// boot and the agent is active and enforcing before sysinit.target
// (scenario 1); a SIGSTOP from PID 1's side stops its watchdog pings and
// systemd restarts it, while a loop probing the protected file never reads
// it (scenario 2); the metrics socket, systemd's, counts every denial of a
// flood (scenario 3).
func TestAgentUnderSystemd(t *testing.T) {
	RequireE2E(t)
	const secret = "/etc/aegis-e2e-secret"
	kit := KitT(t)
	v1 := LayerT(t, kit, Release{Version: "1", Serial: 1, Policy: DenyReads(1, [2]string{"e2e-secret", secret})})
	vm := SlottedVM(t, kit, SlottedConfig{First: v1, RootFiles: []appliance.File{
		{Path: secret, Mode: 0o644, Data: []byte("the e2e secret\n")},
		// An ordinary service, as early as any: it must be denied.
		{Path: "/etc/systemd/system/e2e-early-probe.service", Mode: 0o644, Data: []byte(earlyProbeUnit(secret))},
		{Path: "/etc/systemd/system/multi-user.target.wants/e2e-early-probe.service", Mode: fs.ModeSymlink | 0o777,
			Target: "/etc/systemd/system/e2e-early-probe.service"},
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	state, err := vm.WaitSystem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("system %s", state)
	run := func(cmd string) string {
		t.Helper()
		out, err := vm.Run(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return strings.TrimSpace(out)
	}
	if got := run("systemctl is-active aegisbpf.service || true"); got != "active" {
		t.Fatalf("aegisbpf.service is %q:\n%s", got, run("systemctl status --no-pager -l -n 40 aegisbpf.service || true"))
	}
	t.Logf("status: %s", run("systemctl show -p StatusText --value aegisbpf.service"))
	if got := run("cat " + secret + " 2>&1; echo rc=$?"); !strings.Contains(got, "Operation not permitted") {
		t.Errorf("reading the protected file: %q, want EPERM", got)
	}
	if got := run("cat /etc/hostname >/dev/null; echo rc=$?"); got != "rc=0" {
		t.Errorf("reading an unprotected file: %q", got)
	}
	// READY=1 came before the ordinary services: the agent's start job
	// finished before sysinit.target, which every ordinary service follows.
	order := strings.Fields(run("systemctl show -p ActiveEnterTimestampMonotonic --value aegisbpf.service sysinit.target"))
	if len(order) != 2 {
		t.Fatalf("activation timestamps: %q", order)
	}
	agentAt, err1 := strconv.ParseUint(order[0], 10, 64)
	sysinitAt, err2 := strconv.ParseUint(order[1], 10, 64)
	if err1 != nil || err2 != nil || agentAt == 0 || agentAt > sysinitAt {
		t.Errorf("aegisbpf became active at %s µs, sysinit.target at %s µs (monotonic): want the agent first", order[0], order[1])
	}
	t.Logf("agent active at %.1f s of boot, sysinit.target at %.1f s", float64(agentAt)/1e6, float64(sysinitAt)/1e6)
	if got := run("cat /run/e2e-early-probe 2>&1 || true"); !strings.Contains(got, "Operation not permitted") || !strings.Contains(got, "rc=1") {
		t.Errorf("the early oneshot service's read of the protected file: %q, want EPERM", got)
	}
	if got := run("journalctl -b -o short-monotonic --no-pager -u aegisbpf.service -u e2e-early-probe.service | grep -E 'Started|Starting' || true"); got != "" {
		t.Logf("journal:\n%s", got)
	}
	// The metrics socket is systemd's and listens before the agent starts.
	socks := strings.Fields(run("systemctl show -p ActiveEnterTimestampMonotonic --value aegisbpf-metrics.socket; systemctl show -p ExecMainStartTimestampMonotonic --value aegisbpf.service"))
	if len(socks) != 2 {
		t.Fatalf("socket/agent timestamps: %q", socks)
	}
	if sa, _ := strconv.ParseUint(socks[0], 10, 64); sa == 0 || sa > agentAt {
		t.Errorf("aegisbpf-metrics.socket became active at %s µs, after the agent (%d µs)", socks[0], agentAt)
	}
	t.Logf("slots:\n%s", run("aegisbpf slot status"))
	t.Logf("boot-time activation:\n%s", run("journalctl -b -o cat --no-pager -u aegisbpf-slot-activate.service | grep -E '^activat'"))

	// Watchdog: stop the agent from PID 1's side and probe meanwhile.
	run("systemd-run --unit=e2e-probe --quiet sh -c 'for i in $(seq 600); do cat " + secret + " >/dev/null 2>&1 && echo OPENED >>/run/e2e-probe.log; echo tick >>/run/e2e-probe.ticks; sleep 0.05; done'")
	before := run("systemctl show -p NRestarts --value aegisbpf.service")
	t0 := time.Now()
	run("systemctl kill --signal=SIGSTOP aegisbpf.service")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if now := run("systemctl show -p NRestarts --value aegisbpf.service"); now != before {
			if run("systemctl is-active aegisbpf.service || true") == "active" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watchdog restart within 90 s of SIGSTOP:\n%s", run("journalctl -b -u aegisbpf.service --no-pager -n 30"))
		}
		time.Sleep(time.Second)
	}
	t.Logf("watchdog restart and READY again %s after SIGSTOP (WatchdogSec=10s)", time.Since(t0).Round(time.Second))
	run("systemctl stop e2e-probe.service 2>/dev/null || true")
	if opened := run("cat /run/e2e-probe.log 2>/dev/null | wc -l"); opened != "0" {
		t.Errorf("the protected file was read %s times during the watchdog episode", opened)
	}
	t.Logf("probe reads during the episode: %s, all denied", run("wc -l </run/e2e-probe.ticks"))
	if got := run("cat " + secret + " 2>&1; echo rc=$?"); !strings.Contains(got, "Operation not permitted") {
		t.Errorf("after the restart: %q, want EPERM", got)
	}

	// A flood of denials: counted exactly in metrics, bounded in the journal.
	denials := func() int {
		out := run("aegisbpf metrics | grep '^aegisbpf_rule_decisions_total{action=\"deny\",rule=\"e2e-secret\"}' | cut -d' ' -f2")
		n, err := strconv.ParseFloat(out, 64)
		if err != nil {
			t.Fatalf("reading the deny counter: %q", out)
		}
		return int(n)
	}
	pid := run("systemctl show -p MainPID --value aegisbpf.service")
	rss := func(field string) string {
		return run("grep " + field + " /proc/" + pid + "/status | tr -s ' ' | cut -d' ' -f2-")
	}
	t.Logf("agent RSS idle: %s", rss("VmRSS"))
	const flood = 100000
	before = strconv.Itoa(denials())
	cursor := run("journalctl -b --show-cursor -n 0 | tail -1 | sed 's/^-- cursor: //'")
	tf := time.Now()
	run("i=0; while [ $i -lt " + strconv.Itoa(flood) + " ]; do true <" + secret + "; i=$((i+1)); done 2>/dev/null; true")
	t.Logf("%d denied opens in %s", flood, time.Since(tf).Round(time.Second))
	time.Sleep(6 * time.Second) // one aggregation interval
	b, _ := strconv.Atoi(before)
	if got := denials() - b; got != flood {
		t.Errorf("metrics counted %d denials of the flood, want exactly %d", got, flood)
	}
	entries := run("journalctl --after-cursor='" + cursor + "' MESSAGE_ID=ef60429a610b4c96b92c4c9dff7d4d42 -o cat | wc -l")
	n, _ := strconv.Atoi(entries)
	if n < 1 || n > 200 {
		t.Errorf("the flood produced %d journal entries, want between 1 and 200", n)
	}
	t.Logf("flood: %d journal entries; agent RSS now %s, peak %s", n, rss("VmRSS"), rss("VmHWM"))
}

// earlyProbeUnit is an ordinary oneshot service with default dependencies
// (after sysinit.target, like every ordinary service) that tries to read
// secret and records the outcome.
func earlyProbeUnit(secret string) string {
	return `[Unit]
Description=e2e: an ordinary early service reading a protected file

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'cat ` + secret + ` >/run/e2e-early-probe 2>&1; echo rc=$? >>/run/e2e-early-probe'
`
}
