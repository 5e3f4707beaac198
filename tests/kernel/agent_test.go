package kernel

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/aegisbpf/aegisbpf/policy/sign"
)

// agentEnv names the static aegisbpf binary the harness puts in the guest.
const agentEnv = "AEGISBPF_TEST_AGENT"

// TestAgentRun runs the real aegisbpf binary with a signed enforcing policy
// and a notify socket: READY=1 arrives only once a denied open already
// fails; the metrics endpoint counts the denial under its rule id; after the
// agent exits, the pinned links keep enforcing.
func TestAgentRun(t *testing.T) {
	e, dir := setup(t)
	bin := os.Getenv(agentEnv)
	if bin == "" {
		t.Fatalf("%s is not set: the VM harness must provide the agent binary", agentEnv)
	}
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "s")

	// A signed policy and its trust store.
	pub, priv, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(dir, "trust")
	if err := os.Mkdir(trust, 0o755); err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := keys.MarshalPublic(pub)
	if err := os.WriteFile(filepath.Join(trust, "test.pub"), pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pol := "version = 1\nmode = \"enforce\"\nserial = 7\n\n[[file]]\nid = \"vm-secret\"\npaths = [\"" + secret + "\"]\naccess = \"read\"\n"
	polPath := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(polPath, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	sig, err := sign.Sign(priv, []byte(pol), 7, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(polPath+".sig", sig, 0o644); err != nil {
		t.Fatal(err)
	}

	// Our notify socket plays systemd.
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	metricsSock := filepath.Join(dir, "metrics.sock")

	// A probe started before the agent: it records whether the file was
	// already denied at each moment.
	var deniedSeen atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(openErr(secret), unix.EPERM) {
				deniedSeen.Store(true)
			}
			pause()
		}
	}()

	stateDir := filepath.Join(dir, "state")
	cmd := exec.Command(bin, "run", "--policy", polPath, "--keys", trust, "--bpffs-root", e.Root,
		"--metrics-listen", "unix:"+metricsSock, "--state-dir", stateDir, "--no-journal")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGKILL)
	}()

	// Wait for READY=1.
	notify.SetReadDeadline(time.Now().Add(90 * time.Second))
	buf := make([]byte, 4096)
	ready := false
	for !ready {
		n, err := notify.Read(buf)
		if err != nil {
			t.Fatalf("waiting for READY=1: %v", err)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "READY=1" {
				ready = true
				if !deniedSeen.Load() {
					// The probe may not have run since the attach: check now.
					if !errors.Is(openErr(secret), unix.EPERM) {
						t.Fatal("READY=1 arrived while the protected file still opened")
					}
				}
			}
			if strings.HasPrefix(line, "STATUS=") {
				t.Logf("agent %s", line)
			}
		}
	}
	t.Logf("process start to READY=1: %s", time.Since(start))
	wantDenied(t, "open while the agent runs", openErr(secret))

	// Scrape metrics over the unix socket.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", metricsSock)
	}}, Timeout: 20 * time.Second}
	resp, err := client.Get("http://agent/metrics")
	if err != nil {
		t.Fatalf("scraping metrics: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("metrics do not parse as Prometheus text: %v", err)
	}
	var denied float64
	if mf := families["aegisbpf_rule_decisions_total"]; mf != nil {
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["rule"] == "vm-secret" && labels["action"] == "deny" {
				denied = m.GetCounter().GetValue()
			}
		}
	}
	if denied < 1 {
		t.Errorf("aegisbpf_rule_decisions_total{rule=\"vm-secret\",action=\"deny\"} = %v, want >= 1", denied)
	}
	if mf := families["aegisbpf_enforcement_active"]; mf == nil || mf.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("aegisbpf_enforcement_active is not 1")
	}

	// A graceful stop keeps enforcement.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop within 30 s of SIGTERM")
	}
	wantDenied(t, "open after the agent stopped", openErr(secret))
	if ids, _ := e.List(); len(ids) != 1 {
		t.Errorf("%d instances pinned after the agent stopped, want 1", len(ids))
	}
}
