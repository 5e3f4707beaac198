package e2e

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// agentFiles returns the base-root files that install the agent directly
// (without the signed layer, which the slots work adds): the static binary,
// the units enabled at boot, a signed enforcing policy denying reads of
// secret, and the key that signed it.
func agentFiles(t *testing.T, secret string) []appliance.File {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "aegisbpf")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./agent/cmd/aegisbpf")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, out)
	}
	pub, priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := keys.MarshalPublic(pub)
	pol := "version = 1\nmode = \"enforce\"\nserial = 1\n\n[[file]]\nid = \"e2e-secret\"\npaths = [\"" + secret + "\"]\naccess = \"read\"\n"
	sig, err := sign.Sign(priv, []byte(pol), 1, time.Now().Add(-24*time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	unit := func(name string) appliance.File {
		return appliance.File{Path: "/usr/lib/systemd/system/" + name, Mode: 0o644, Source: filepath.Join(root, "systemd", name)}
	}
	return []appliance.File{
		{Path: "/usr/bin/aegisbpf", Mode: 0o755, Source: bin},
		unit("aegisbpf.service"),
		unit("aegisbpf-metrics.socket"),
		{Path: "/etc/systemd/system/sysinit.target.wants/aegisbpf.service", Mode: fs.ModeSymlink, Target: "/usr/lib/systemd/system/aegisbpf.service"},
		{Path: "/etc/systemd/system/sockets.target.wants/aegisbpf-metrics.socket", Mode: fs.ModeSymlink, Target: "/usr/lib/systemd/system/aegisbpf-metrics.socket"},
		{Path: "/usr/share/aegisbpf/policy.toml", Mode: 0o644, Data: []byte(pol)},
		{Path: "/usr/share/aegisbpf/policy.toml.sig", Mode: 0o644, Data: sig},
		{Path: "/usr/lib/aegisbpf/keys/e2e.pub", Mode: 0o644, Data: pubPEM},
		{Path: secret, Mode: 0o644, Data: []byte("the e2e secret\n")},
	}
}

// TestAgentUnderSystemd boots the appliance with the agent enabled as a
// systemd service: it is active and enforcing after boot; a SIGSTOP from
// PID 1's side stops its watchdog pings and systemd restarts it, while a
// loop probing the protected file never reads it.
func TestAgentUnderSystemd(t *testing.T) {
	RequireE2E(t)
	const secret = "/etc/aegis-e2e-secret"
	a := BuildT(t, appliance.Config{RootFiles: agentFiles(t, secret)})
	vm := StartT(t, a, Config{})
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
