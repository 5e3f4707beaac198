package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReportGolden(t *testing.T) {
	r := testReport(t)
	t.Run("text", func(t *testing.T) {
		var b bytes.Buffer
		if err := r.WriteText(&b, 20); err != nil {
			t.Fatal(err)
		}
		golden(t, "report.txt", b.Bytes())
	})
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		golden(t, "report.json", b.Bytes())
		var back Report
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		if back.Format != ReportFormat {
			t.Errorf("format %q", back.Format)
		}
	})
}

func TestReportGrouping(t *testing.T) {
	r := testReport(t)
	if r.WouldBlock != 119 || r.Denied != 3 || r.Unresolved != 6 || r.NotItemized != 500 {
		t.Errorf("totals: would block %d, denied %d, unresolved %d, not itemized %d", r.WouldBlock, r.Denied, r.Unresolved, r.NotItemized)
	}
	var order []string
	for _, rr := range r.Rules {
		order = append(order, rr.Rule)
	}
	if got, want := strings.Join(order, " "), "protect-shadow no-exec-scratch no-cloud-metadata protect-secrets old-rule"; got != want {
		t.Errorf("rules in order %q, want %q", got, want)
	}
	shadow := r.Rules[0]
	if shadow.WouldBlock != 61 || shadow.Objects[0] != (Group{"/etc/shadow", 49, at(0), at(20)}) {
		t.Errorf("protect-shadow: %d events, top object %+v", shadow.WouldBlock, shadow.Objects[0])
	}
	cg := shadow.Cgroups[0]
	if cg.Cgroup.Path != "/system.slice/ssh.service" || cg.Cgroup.Unit != "ssh.service" || cg.Count != 57 ||
		len(cg.Binaries) != 2 || cg.Binaries[0].Name != "sshd" || cg.Binaries[0].Count != 52 {
		t.Errorf("protect-shadow top cgroup %+v", cg)
	}
	if s := shadow.Share; s == nil || s.WouldBlock != 70 || s.Decisions != 1245128 {
		t.Errorf("share %+v", s)
	}
	if got := shadow.Cgroups[1].Cgroup.String(); got != "id 9999 (gone)" {
		t.Errorf("gone cgroup shown as %q", got)
	}
}

func at(h float64) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h * float64(time.Hour)))
}

func TestReportSince(t *testing.T) {
	in, err := ReadJournal(bytes.NewReader(readTestdata(t, "journal.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	// The last three hours before testNow hold the entries last seen at
	// 20:00 or later: sshd's 40 and 12, and sh's 30.
	r := Build(in, Options{Since: 3 * time.Hour, Cutoff: testNow.Add(-3 * time.Hour)})
	if r.WouldBlock != 82 || len(r.Rules) != 2 {
		t.Errorf("since 3h: %d would-block events in %d rules", r.WouldBlock, len(r.Rules))
	}
	if r.Rules[0].Cgroups[0].Cgroup.State != CgroupUnresolved || r.CountersUnavailable == "" || r.Rules[0].Share != nil {
		t.Errorf("without resolver and counters: %+v", r.Rules[0])
	}
}

func TestReportEmpty(t *testing.T) {
	r := Build(&Input{}, Options{Source: "journal", CountersErr: errString("dial unix /run/aegisbpf/metrics.sock: connect: no such file or directory")})
	var b bytes.Buffer
	if err := r.WriteText(&b, 0); err != nil {
		t.Fatal(err)
	}
	want := `AegisBPF audit report: journal, all events in the input
Events:   none
Would block (audit): 0 in 0 rules
Denied (enforce):    0
Agent counters:      unavailable (dial unix /run/aegisbpf/metrics.sock: connect: no such file or directory): no shares of decisions
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"rules": []`) || !strings.Contains(b.String(), `"decisions": null`) {
		t.Errorf("empty JSON report:\n%s", b.String())
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want string
	}{{0, "0%"}, {12.5, "12.50%"}, {0.0123, "0.0123%"}, {0.5, "0.500%"}, {0.00001, "0.0000100%"}} {
		if got := percent(tc.p); got != tc.want {
			t.Errorf("percent(%v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
