package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/audit"
	"github.com/aegisbpf/aegisbpf/agent/events"
)

// auditFixture is a cgroup tree, a journal export whose events come from
// its cgroups, and a policy with the rules that made them.
type auditFixture struct {
	cgroupRoot, input, policy string
}

func newAuditFixture(t *testing.T) auditFixture {
	t.Helper()
	dir := t.TempDir()
	f := auditFixture{cgroupRoot: filepath.Join(dir, "cgroup"), input: filepath.Join(dir, "journal.json"), policy: filepath.Join(dir, "policy.toml")}
	ino := func(p string) uint64 {
		d := filepath.Join(f.cgroupRoot, p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	ssh, cron := ino("system.slice/ssh.service"), ino("system.slice/cron.service")
	first := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixMicro()
	var lines []string
	add := func(rule, action, comm string, cg uint64, count int) {
		b, _ := json.Marshal(map[string]any{
			"MESSAGE_ID": events.MessageID, "AEGIS_KIND": "event", "AEGIS_RULE": rule, "AEGIS_ACTION": action,
			"AEGIS_HOOK": "file_open", "AEGIS_ACCESS": "read", "AEGIS_PATH": "/etc/shadow", "AEGIS_COMM": comm,
			"AEGIS_CGROUP_ID": fmt.Sprint(cg), "AEGIS_COUNT": fmt.Sprint(count),
			"AEGIS_FIRST_USEC": fmt.Sprint(first), "AEGIS_LAST_USEC": fmt.Sprint(first + 60e6),
		})
		lines = append(lines, string(b))
	}
	add("protect-shadow", "audit", "sshd", ssh, 40)
	add("protect-shadow", "audit", "cron", cron, 2)
	add("protect-shadow", "audit", "cat", 424242424242, 1)
	add("protect-shadow", "deny", "cat", ssh, 3)
	if err := os.WriteFile(f.input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol := "version = 1\nmode = \"audit\"\nserial = 3\n\n[[file]]\nid = \"protect-shadow\"\npaths = [\"/etc/shadow\"]\n\n[[protect]]\nid = \"no-ptrace\"\nkind = \"ptrace\"\n"
	if err := os.WriteFile(f.policy, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = Main(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestAuditReport(t *testing.T) {
	f := newAuditFixture(t)
	t.Run("text without the agent", func(t *testing.T) {
		code, out, errs := runMain("audit", "report", "--input", f.input, "--cgroup-root", f.cgroupRoot,
			"--socket", filepath.Join(t.TempDir(), "none.sock"))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{
			"Would block (audit): 43 in 1 rule\n",
			"Denied (enforce):    3 (protect-shadow 3)\n",
			"rule protect-shadow: 43 would-block events (file_open), 2026-03-02T10:00:00Z to 2026-03-02T10:01:00Z\n",
			"  share of decisions: agent counters unavailable\n",
			"/system.slice/ssh.service (ssh.service): sshd 40\n",
			"id 424242424242 (gone): cat 1\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("json with the agent's counters", func(t *testing.T) {
		sock := fakeMetricsSocket(t, "# TYPE aegisbpf_decisions_total counter\n"+
			"aegisbpf_decisions_total{action=\"allow\",hook=\"file_open\"} 99957\n"+
			"aegisbpf_decisions_total{action=\"audit\",hook=\"file_open\"} 43\n"+
			"# TYPE aegisbpf_rule_decisions_total counter\n"+
			"aegisbpf_rule_decisions_total{action=\"audit\",rule=\"protect-shadow\"} 43\n")
		code, out, errs := runMain("audit", "report", "--json", "--input", f.input, "--cgroup-root", f.cgroupRoot, "--socket", sock)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var r audit.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if r.Format != audit.ReportFormat || len(r.Rules) != 1 || r.Rules[0].Share == nil || r.Rules[0].Share.Percent != 0.043 {
			t.Errorf("report %s", out)
		}
	})
	t.Run("bad line", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.json")
		src, _ := os.ReadFile(f.input)
		os.WriteFile(bad, append(src, []byte(`{"MESSAGE_ID":"`+events.MessageID+`","AEGIS_ACTION":"audit","AEGIS_COUNT":"many"}`+"\n")...), 0o644)
		code, out, errs := runMain("audit", "report", "--input", bad, "--cgroup-root", "")
		if code != 1 || out != "" {
			t.Errorf("exit %d, stdout %q", code, out)
		}
		if want := "aegisbpf: " + bad + `: line 5: field AEGIS_COUNT: strconv.ParseUint: parsing "many": invalid syntax`; !strings.HasPrefix(errs, want) {
			t.Errorf("stderr %q, want %q", errs, want)
		}
	})
	t.Run("since cuts a saved input", func(t *testing.T) {
		src, _ := os.ReadFile(f.input)
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &out}
		now := func() time.Time { return time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC) }
		for since, want := range map[string]string{"1h": "Would block (audit): 43 in 1 rule", "10m": "Would block (audit): 0 in 0 rules"} {
			out.Reset()
			deps := auditDeps{stdin: bytes.NewReader(src), now: now}
			if err := runAuditReport(context.Background(), env, []string{"--input", "-", "--since", since, "--socket", "/nonexistent"}, deps); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("--since %s: report lacks %q:\n%s", since, want, out.String())
			}
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, _ := runMain("audit", "report", "--since", "-1h", "--input", f.input); code != 2 {
			t.Errorf("negative --since: exit %d", code)
		}
		if code, _, _ := runMain("audit", "report", "extra"); code != 2 {
			t.Errorf("an argument: exit %d", code)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		src, _ := os.ReadFile(f.input)
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &out}
		deps := auditDeps{stdin: bytes.NewReader(src), now: time.Now}
		if err := runAuditReport(context.Background(), env, []string{"--input", "-", "--cgroup-root", "", "--socket", "/nonexistent"}, deps); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "AegisBPF audit report: stdin,") || !strings.Contains(out.String(), "id 424242424242: cat 1") {
			t.Errorf("report:\n%s", out.String())
		}
	})
	t.Run("journalctl", func(t *testing.T) {
		src, _ := os.ReadFile(f.input)
		jctl, argsFile := fakeJournalctl(t, string(src))
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &out}
		deps := auditDeps{journalctl: jctl, now: time.Now}
		if err := runAuditReport(context.Background(), env, []string{"--since", "24h", "--cgroup-root", f.cgroupRoot, "--socket", "/nonexistent"}, deps); err != nil {
			t.Fatal(err)
		}
		args, _ := os.ReadFile(argsFile)
		if !strings.Contains(string(args), "--since=-86400s\n") || !strings.Contains(string(args), "MESSAGE_ID="+events.MessageID+"\n") {
			t.Errorf("journalctl args:\n%s", args)
		}
		// journalctl chose the window (the saved events are older): the
		// report does not cut its output again.
		if !strings.Contains(out.String(), "AegisBPF audit report: journal, last 24h0m0s") ||
			!strings.Contains(out.String(), "Would block (audit): 43 in 1 rule") {
			t.Errorf("report:\n%s", out.String())
		}
	})
}

func fakeMetricsSocket(t *testing.T, body string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "m.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(body)) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestAuditSuggest(t *testing.T) {
	f := newAuditFixture(t)
	t.Run("snippet", func(t *testing.T) {
		code, out, errs := runMain("audit", "suggest", "--input", f.input, "--cgroup-root", f.cgroupRoot)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		want := "[[file]]\nid = \"protect-shadow\"\nexempt_cgroups = [\n" +
			"  \"/system.slice/ssh.service\", # 40 events: sshd 40\n" +
			"  \"/system.slice/cron.service\", # 2 events: cron 2\n]\n" +
			"# not exempted (the policy exempts by cgroup only; review these accessors by hand):\n" +
			"# - id 424242424242 (gone): 1 event: cat 1; the cgroup is gone, so its path is unknown\n"
		if !strings.Contains(out, want) {
			t.Errorf("snippet lacks\n%s\ngot:\n%s", want, out)
		}
	})
	t.Run("policy passes policy check", func(t *testing.T) {
		code, out, errs := runMain("audit", "suggest", "--input", f.input, "--cgroup-root", f.cgroupRoot, "--policy", f.policy)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if !strings.Contains(out, "paths = [\"/etc/shadow\"]\n# audit suggest, rule protect-shadow") {
			t.Errorf("suggested policy:\n%s", out)
		}
		drafted := filepath.Join(t.TempDir(), "drafted.toml")
		if err := os.WriteFile(drafted, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		code, check, errs := runMain("policy", "check", drafted)
		if code != 0 || !strings.Contains(check, "ok (mode audit, serial 3, 2 rules)") {
			t.Errorf("policy check: exit %d\n%s%s\npolicy:\n%s", code, check, errs, out)
		}
		orig, _ := os.ReadFile(f.policy)
		if !strings.HasSuffix(out, "kind = \"ptrace\"\n") || strings.Count(out, "exempt_cgroups = [") != 1 || len(out) < len(orig) {
			t.Errorf("policy:\n%s", out)
		}
		if after, _ := os.ReadFile(f.policy); !bytes.Equal(after, orig) {
			t.Errorf("the policy file was changed")
		}
	})
	t.Run("invalid policy", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.toml")
		os.WriteFile(bad, []byte("version = 1\nmode = \"audit\"\nserial = 1\n[[file]]\nid = \"x\"\n"), 0o644)
		code, out, errs := runMain("audit", "suggest", "--input", f.input, "--policy", bad)
		if code != 1 || !strings.Contains(out, bad+":4:1:") || !strings.Contains(errs, "1 problem") {
			t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errs)
		}
	})
}
