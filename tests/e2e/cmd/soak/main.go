// Command soak is "make soak": the appliance runs the example policy in
// audit mode (the shadow phase of docs/ROLLOUT_PLAN.md) under a mixed
// workload for a set time, and the command records what the agent cost
// and saw: its CPU and memory, ring buffer drops, restarts, decisions and
// would-blocks. A few deliberate would-block accesses run at the start,
// the middle and the end; each must show in `aegisbpf audit report`, and
// every other would-block the report shows is listed for review. It
// writes the figures to the soak section of docs/PERFORMANCE.md beside
// the seed's phase-0 thresholds, and exits non-zero when a deliberate
// access is missing or the agent restarted.
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

	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/tests/e2e"
	"github.com/aegisbpf/aegisbpf/tests/perfdoc"
)

const exampleP = "policy/examples/hardened-host.toml"

// workload is the guest's mixed load, one round a second or as fast as
// TCG allows: package manager queries, file-heavy loops, process spawning
// and loopback HTTP. It runs as its own unit (soak-workload.service), so
// the audit report groups whatever it triggers under that cgroup.
const workload = `#!/bin/bash
set -u
busybox httpd -f -p 127.0.0.1:8080 -h /usr/share/doc &
i=0
while :; do
	i=$((i+1))
	dpkg-query -W >/dev/null
	apt-cache policy systemd >/dev/null 2>&1
	if [ $((i % 10)) -eq 1 ]; then dpkg --verify systemd >/dev/null 2>&1; fi
	for f in /usr/share/doc/*/copyright; do head -c 64 "$f"; done >/dev/null 2>&1
	find /usr/lib -maxdepth 3 -name '*.so*' >/dev/null 2>&1
	for n in $(seq 20); do /bin/true; done
	for n in 1 2 3 4 5; do busybox wget -q -O /dev/null http://127.0.0.1:8080/systemd/copyright; done
	echo "$i" > /run/soak-rounds
	sleep 1
done
`

// deliberate are the accesses the example policy would block, with the
// rule each must be reported under. They run in soak-deliberate.service,
// a unit that lives for the whole soak (so the report can still resolve
// its cgroup): the harness asks for a round by creating /run/soak-go.
var deliberate = []struct{ rule, cmd string }{
	{"protect-shadow", "cat /etc/shadow >/dev/null"},
	{"no-exec-scratch", "cp /bin/true /tmp/soak-true && /tmp/soak-true"},
	{"no-cloud-metadata", "busybox nc -w 1 169.254.169.254 80 </dev/null"},
}

// deliberateScript is soak-deliberate.service's loop.
func deliberateScript() string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\nwhile :; do\n\tif [ -e /run/soak-go ]; then\n\t\trm -f /run/soak-go\n")
	for _, d := range deliberate {
		fmt.Fprintf(&b, "\t\t%s >/dev/null 2>&1\n", d.cmd)
	}
	b.WriteString("\t\ttouch /run/soak-done\n\tfi\n\tsleep 0.2\ndone\n")
	return b.String()
}

type soak struct {
	ctx context.Context
	vm  *e2e.VM
}

func main() {
	minutes := flag.Float64("minutes", 60, "how long the workload runs")
	out := flag.String("out", "build/soak", "where the key, layer and appliance go (`DIR`)")
	doc := flag.String("doc", "docs/PERFORMANCE.md", "the markdown `FILE` whose soak section is rewritten; empty: print only")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, time.Duration(*minutes*float64(time.Minute)), *out, *doc); err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, length time.Duration, out, docPath string) error {
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
	audit := regexp.MustCompile(`(?m)^mode = "enforce"$`).ReplaceAllString(string(example), `mode = "audit"`)
	if audit == string(example) {
		return fmt.Errorf("%s has no top-level mode = \"enforce\" line to turn into audit", exampleP)
	}
	kit, err := e2e.NewKit(ctx, out)
	if err != nil {
		return err
	}
	layer, err := kit.Layer(ctx, e2e.Release{Version: "1", Serial: 1, Policy: audit})
	if err != nil {
		return err
	}
	cfg, err := kit.ApplianceConfig(ctx, e2e.SlottedConfig{First: layer, RootFiles: []appliance.File{
		{Path: "/usr/local/bin/soak-workload", Mode: 0o755, Data: []byte(workload)},
		{Path: "/usr/local/bin/soak-deliberate", Mode: 0o755, Data: []byte(deliberateScript())},
	}})
	if err != nil {
		return err
	}
	cfg.OutDir = filepath.Join(out, "appliance")
	cfg.Log = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := e2e.BuildAppliance(ctx, cfg)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "aegisbpf-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	say("booting the appliance (example policy in audit mode)")
	vm, err := e2e.Start(ctx, e2e.Config{Appliance: a, WorkDir: work, Timeout: length + 20*time.Minute})
	if err != nil {
		return err
	}
	defer vm.Close()
	if _, err := vm.WaitReady(ctx); err != nil {
		return err
	}
	if _, err := vm.WaitSystem(ctx); err != nil {
		return err
	}
	s := &soak{ctx: ctx, vm: vm}
	if got := s.quiet("systemctl is-active aegisbpf.service"); got != "active" {
		return fmt.Errorf("the agent is %q after boot", got)
	}
	r, err := s.measure(length)
	if err != nil {
		return err
	}
	text := r.markdown()
	fmt.Println()
	fmt.Print(text)
	if docPath != "" {
		if err := perfdoc.ReplaceFile(filepath.Join(repo, docPath), "soak", []byte(text)); err != nil {
			return err
		}
		say("wrote the soak section of %s", docPath)
	}
	if problems := r.problems(); len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// quiet runs cmd in the guest and returns its trimmed stdout ("" on error).
func (s *soak) quiet(cmd string) string {
	res, err := s.vm.Exec(s.ctx, cmd)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(res.Stdout))
}

// must runs cmd in the guest and fails on a non-zero exit.
func (s *soak) must(cmd string) (string, error) {
	out, err := s.vm.Run(s.ctx, cmd)
	return strings.TrimSpace(out), err
}
