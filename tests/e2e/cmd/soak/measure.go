package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is the agent process at one moment, on the guest's clock.
type sample struct {
	pid    string
	uptime float64 // seconds since the guest booted
	cpu    float64 // the agent's user+system CPU seconds
	rss    int64   // kB
	hwm    int64   // kB, peak RSS of the process
}

const sampleCmd = `pid=$(systemctl show -p MainPID --value aegisbpf.service); echo "$pid"; ` +
	`cut -d' ' -f1 /proc/uptime; cut -d' ' -f14,15 /proc/$pid/stat; getconf CLK_TCK; ` +
	`awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r, h}' /proc/$pid/status`

func (s *soak) sample() (sample, error) {
	out, err := s.must(sampleCmd)
	if err != nil {
		return sample{}, err
	}
	f := strings.Fields(out)
	if len(f) != 7 {
		return sample{}, fmt.Errorf("sampling the agent: %q", out)
	}
	var sm sample
	var ut, st, tck float64
	sm.pid = f[0]
	for i, dst := range []*float64{&sm.uptime, &ut, &st, &tck} {
		if *dst, err = strconv.ParseFloat(f[i+1], 64); err != nil {
			return sample{}, fmt.Errorf("sampling the agent: %q: %v", out, err)
		}
	}
	sm.cpu = (ut + st) / tck
	sm.rss, _ = strconv.ParseInt(f[5], 10, 64)
	sm.hwm, _ = strconv.ParseInt(f[6], 10, 64)
	return sm, nil
}

// result is what a soak run measured.
type result struct {
	length      time.Duration // guest time from the first to the last sample
	kernel      string
	rounds      string // workload rounds completed
	cpuAvg      float64
	cpuMax      float64 // the busiest sampling window
	window      time.Duration
	rssMax      int64 // kB, largest sampled RSS
	hwm         int64 // kB
	pidChanged  bool
	restarts    string // systemd's NRestarts
	starts      float64
	drops       float64
	overflow    float64
	decisions   float64
	audits      map[string]float64 // would-blocks by rule, from the counters
	expected    map[string]int     // deliberate would-blocks by rule
	report      *auditReport
	unexpected  float64 // would-blocks the report shows from anything but the deliberate unit
	reportErr   error
	otherBlocks []string
}

const sampleEvery = 30 * time.Second

// deliberateRound has soak-deliberate.service run its accesses once and
// waits until it did.
func (s *soak) deliberateRound() error {
	if _, err := s.must("rm -f /run/soak-done; touch /run/soak-go"); err != nil {
		return err
	}
	for t0 := time.Now(); time.Since(t0) < time.Minute; time.Sleep(time.Second) {
		if s.quiet("test -e /run/soak-done && echo yes") == "yes" {
			return nil
		}
	}
	return fmt.Errorf("soak-deliberate.service did not run its accesses within a minute")
}

func (s *soak) measure(length time.Duration) (*result, error) {
	r := &result{audits: map[string]float64{}, expected: map[string]int{}, window: sampleEvery}
	r.kernel = s.quiet("uname -r")
	if _, err := s.must("systemd-run --unit=soak-workload --quiet /usr/local/bin/soak-workload && " +
		"systemd-run --unit=soak-deliberate --quiet /usr/local/bin/soak-deliberate"); err != nil {
		return nil, err
	}
	first, err := s.sample()
	if err != nil {
		return nil, err
	}
	say("workload started; agent pid %s, %s of guest uptime", first.pid, time.Duration(first.uptime*float64(time.Second)).Round(time.Second))
	doRound := func() error {
		for _, d := range deliberate {
			r.expected[d.rule]++
		}
		return s.deliberateRound()
	}
	if err := doRound(); err != nil {
		return nil, err
	}
	start := time.Now()
	prev, last := first, first
	half := false
	for time.Since(start) < length {
		wait := min(sampleEvery, length-time.Since(start))
		select {
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		case <-time.After(wait):
		}
		sm, err := s.sample()
		if err != nil {
			return nil, err
		}
		if sm.pid != first.pid {
			r.pidChanged = true
		} else if dt := sm.uptime - prev.uptime; dt > 0 {
			r.cpuMax = math.Max(r.cpuMax, 100*(sm.cpu-prev.cpu)/dt)
		}
		r.rssMax = max(r.rssMax, sm.rss)
		prev, last = sm, sm
		if !half && time.Since(start) >= length/2 {
			half = true
			if err := doRound(); err != nil {
				return nil, err
			}
		}
		say("%s: agent CPU %.2f%% since start, RSS %d kB (peak %d kB), %s workload rounds",
			time.Since(start).Round(time.Second), 100*(sm.cpu-first.cpu)/(sm.uptime-first.uptime), sm.rss, sm.hwm, s.quiet("cat /run/soak-rounds"))
	}
	if err := doRound(); err != nil {
		return nil, err
	}
	r.rounds = s.quiet("cat /run/soak-rounds")
	r.length = time.Duration((last.uptime - first.uptime) * float64(time.Second))
	if !r.pidChanged && last.uptime > first.uptime {
		r.cpuAvg = 100 * (last.cpu - first.cpu) / (last.uptime - first.uptime)
	}
	r.hwm = last.hwm
	r.restarts = s.quiet("systemctl show -p NRestarts --value aegisbpf.service")

	// The aggregator writes an interval's events when it ends (5 s).
	time.Sleep(7 * time.Second)
	text, err := s.must("aegisbpf metrics")
	if err != nil {
		return nil, err
	}
	if err := r.readMetrics(text); err != nil {
		return nil, err
	}
	since := fmt.Sprintf("%ds", int(time.Since(start).Seconds())+120)
	r.report, r.reportErr = s.auditReport(since)
	// Stopped only now: the report resolves the units' cgroups.
	s.quiet("systemctl stop soak-workload.service soak-deliberate.service")
	r.compare()
	return r, nil
}

func (r *result) readMetrics(text string) error {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text + "\n"))
	if err != nil {
		return fmt.Errorf("parsing the agent's metrics: %w", err)
	}
	val := func(m *dto.Metric) float64 {
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
		return 0
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	sum := func(name string) float64 {
		t := 0.0
		if f := fams[name]; f != nil {
			for _, m := range f.GetMetric() {
				t += val(m)
			}
		}
		return t
	}
	r.starts = sum("aegisbpf_agent_starts_total")
	r.drops = sum("aegisbpf_ringbuf_drops_total")
	r.overflow = sum("aegisbpf_events_overflow_total")
	r.decisions = sum("aegisbpf_decisions_total")
	if f := fams["aegisbpf_rule_decisions_total"]; f != nil {
		for _, m := range f.GetMetric() {
			if label(m, "action") == "audit" {
				r.audits[label(m, "rule")] += val(m)
			}
		}
	}
	if r.decisions == 0 {
		return fmt.Errorf("the agent's metrics count no decisions:\n%s", text)
	}
	return nil
}

// problems are what makes the soak fail: a deliberate access that did
// not show, or an agent that restarted.
func (r *result) problems() []string {
	var p []string
	for _, d := range deliberate {
		if got := r.audits[d.rule]; got < float64(r.expected[d.rule]) {
			p = append(p, fmt.Sprintf("rule %s counted %v would-blocks, want at least the %d deliberate ones", d.rule, got, r.expected[d.rule]))
		}
	}
	if r.reportErr != nil {
		p = append(p, "audit report: "+r.reportErr.Error())
	} else {
		for _, d := range deliberate {
			if !r.report.shows(d.rule) {
				p = append(p, fmt.Sprintf("audit report does not show the deliberate %s accesses", d.rule))
			}
		}
	}
	if r.pidChanged || (r.restarts != "0" && r.restarts != "") || r.starts > 1 {
		p = append(p, fmt.Sprintf("the agent restarted (NRestarts %s, starts %v)", r.restarts, r.starts))
	}
	return p
}
