package metrics

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "rewrite docs/METRICS.md")

const referencePath = "../../docs/METRICS.md"

// TestReference fails when docs/METRICS.md is not what the registry
// describes; -update rewrites it.
func TestReference(t *testing.T) {
	reg := NewRegistry(staticSource(referenceSnapshot()), buildInfo)
	var b bytes.Buffer
	if err := WriteReference(&b, reg, reg); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(referencePath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./agent/metrics -run TestReference -update)", err)
	}
	if !bytes.Equal(old, b.Bytes()) {
		t.Fatalf("docs/METRICS.md is stale: run go test ./agent/metrics -run TestReference -update")
	}
}

// exposition returns the text format of reg.
func exposition(t *testing.T, reg *Registry) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("expfmt cannot parse the exposition: %v", err)
	}
	return fams
}

// value returns the value of the sample of name with the given labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestExposition(t *testing.T) {
	reg := NewRegistry(staticSource(referenceSnapshot()), buildInfo)
	text := exposition(t, reg)
	fams := parse(t, text)

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"aegisbpf_rule_decisions_total", []string{"rule", "protect-shadow", "action", "deny"}, 7},
		{"aegisbpf_rule_decisions_total", []string{"rule", "audit-nc", "action", "audit"}, 3},
		{"aegisbpf_decisions_total", []string{"hook", "file_open", "action", "deny"}, 7},
		{"aegisbpf_decisions_total", []string{"hook", "exec", "action", "audit"}, 3},
		{"aegisbpf_decisions_total", []string{"hook", "unknown", "action", "deny"}, 1},
		{"aegisbpf_ringbuf_drops_total", nil, 2},
		{"aegisbpf_policy_info", []string{"mode", "enforce"}, 1},
		{"aegisbpf_policy_serial", nil, 42},
		{"aegisbpf_policy_signature_expiry_timestamp_seconds", nil, 1800000000},
		{"aegisbpf_enforcement_active", nil, 1},
		{"aegisbpf_map_capacity_entries", []string{"map", "decisions"}, 32},
		{"aegisbpf_program_run_seconds_total", []string{"program", "aegis_file_open"}, 0.0015},
		{"aegisbpf_health_check_ok", []string{"check", "events"}, 0},
		{"aegisbpf_events_sink_errors_total", []string{"sink", "json"}, 1},
		{"aegisbpf_time_to_enforcement_seconds", nil, 0.08},
		{"aegisbpf_slot_state_ok", nil, 1},
		{"aegisbpf_slot_active_serial", nil, 3},
		{"aegisbpf_slot_serial_floor", nil, 2},
		{"aegisbpf_slot_pending", nil, 1},
		{"aegisbpf_slot_pending_since_timestamp_seconds", nil, 1700000100},
		{"aegisbpf_slot_last_rollback_timestamp_seconds", nil, 1700000000},
		{"aegisbpf_slot_bad", nil, 1},
	} {
		got, ok := value(t, fams, c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(t, fams, "aegisbpf_rule_decisions_total", "rule", "never-hit"); ok {
		t.Error("a rule that never decided has series")
	}
	if _, ok := value(t, fams, "aegisbpf_map_entries", "map", "decisions"); ok {
		t.Error("an uncounted map has an entries series")
	}
	if _, ok := fams["go_gc_gomemlimit_bytes"]; !ok {
		t.Error("go_gc_gomemlimit_bytes missing")
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not installed (Debian package prometheus): cannot lint the exposition")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(text)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})
}

func TestExpositionBeforeEnforcement(t *testing.T) {
	for name, snap := range map[string]Snapshot{
		"starting":   {},
		"read error": {KernelErr: errRead, Agent: Agent{Starts: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			fams := parse(t, exposition(t, NewRegistry(staticSource(snap), buildInfo)))
			if v, ok := value(t, fams, "aegisbpf_kernel_stats_ok"); !ok || v != 0 {
				t.Errorf("kernel_stats_ok = %v, %v", v, ok)
			}
			if v, ok := value(t, fams, "aegisbpf_enforcement_active"); !ok || v != 0 {
				t.Errorf("enforcement_active = %v, %v", v, ok)
			}
			for _, absent := range []string{"aegisbpf_policy_info", "aegisbpf_decisions_total", "aegisbpf_events_read_total"} {
				if _, ok := fams[absent]; ok {
					t.Errorf("%s present before enforcement", absent)
				}
			}
			if !strings.Contains(string(exposition(t, NewRegistry(staticSource(snap), buildInfo))), "aegisbpf_build_info{") {
				t.Error("build info missing")
			}
		})
	}
}

// TestSlotMetrics: a host without slots has no slot series; an unreadable
// state file says so in slot_state_ok and nothing else; timestamps that
// are unknown are absent, not zero.
func TestSlotMetrics(t *testing.T) {
	slotSeries := func(fams map[string]*dto.MetricFamily) []string {
		var names []string
		for name := range fams {
			if strings.HasPrefix(name, "aegisbpf_slot_") {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		return names
	}
	fams := parse(t, exposition(t, NewRegistry(staticSource(Snapshot{}), buildInfo)))
	if got := slotSeries(fams); len(got) != 0 {
		t.Errorf("no slots: series %v", got)
	}
	fams = parse(t, exposition(t, NewRegistry(staticSource(Snapshot{SlotsErr: errRead}), buildInfo)))
	if got := slotSeries(fams); !slices.Equal(got, []string{"aegisbpf_slot_state_ok"}) {
		t.Errorf("unreadable state: series %v, want only aegisbpf_slot_state_ok", got)
	}
	if v, _ := value(t, fams, "aegisbpf_slot_state_ok"); v != 0 {
		t.Errorf("unreadable state: slot_state_ok %v", v)
	}
	fams = parse(t, exposition(t, NewRegistry(staticSource(Snapshot{Slots: &Slots{ActiveSerial: 1, Floor: 1}}), buildInfo)))
	want := []string{"aegisbpf_slot_active_serial", "aegisbpf_slot_bad", "aegisbpf_slot_pending", "aegisbpf_slot_serial_floor", "aegisbpf_slot_state_ok"}
	if got := slotSeries(fams); !slices.Equal(got, want) {
		t.Errorf("good slot, nothing pending, no rollback: series %v, want %v", got, want)
	}
}

func TestNames(t *testing.T) {
	names, err := NewRegistry(staticSource(Snapshot{}), buildInfo).Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"aegisbpf_enforcement_active", "aegisbpf_ringbuf_drops_total", "process_resident_memory_bytes", "go_goroutines"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s", want)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("Names() is not sorted")
	}
}
