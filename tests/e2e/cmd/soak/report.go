package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// auditReport is `aegisbpf audit report --json`, kept as the generic JSON
// tree: the soak only needs to find rules and who triggered them.
type auditReport struct {
	raw  []byte
	tree any
}

func (s *soak) auditReport(since string) (*auditReport, error) {
	res, err := s.vm.Exec(s.ctx, "aegisbpf audit report --json --since "+since)
	if err != nil {
		return nil, err
	}
	if res.Exit != 0 {
		return nil, fmt.Errorf("exit %d: %s", res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	r := &auditReport{raw: res.Stdout}
	if err := json.Unmarshal(res.Stdout, &r.tree); err != nil {
		return nil, fmt.Errorf("parsing its JSON: %w", err)
	}
	return r, nil
}

// ruleObjects returns the JSON objects of the report that carry a rule id.
func (a *auditReport) ruleObjects() map[string]map[string]any {
	out := map[string]map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range []string{"rule", "id"} {
				if id, ok := v[k].(string); ok && (v["cgroups"] != nil || v["binaries"] != nil) {
					out[id] = v
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(a.tree)
	return out
}

// strings returns every string value under v.
func stringsUnder(v any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// shows reports whether the report lists rule with an accessor whose
// cgroup contains unit.
func (a *auditReport) shows(rule, unit string) bool {
	obj, ok := a.ruleObjects()[rule]
	if !ok {
		return false
	}
	for _, s := range stringsUnder(obj["cgroups"]) {
		if strings.Contains(s, unit) {
			return true
		}
	}
	return false
}

// compare lists the would-blocks that are not the deliberate ones: the
// rules and accessors the report shows besides the soak-deliberate units.
func (r *result) compare() {
	if r.report == nil {
		return
	}
	for rule, obj := range r.report.ruleObjects() {
		var others []string
		for _, s := range stringsUnder(obj["cgroups"]) {
			if strings.HasPrefix(s, "/") && !strings.Contains(s, "soak-deliberate-") {
				others = append(others, s)
			}
		}
		if len(others) > 0 {
			sort.Strings(others)
			r.otherBlocks = append(r.otherBlocks, fmt.Sprintf("%s: %s", rule, strings.Join(others, ", ")))
		}
	}
	sort.Strings(r.otherBlocks)
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// markdown is the soak section of docs/PERFORMANCE.md.
func (r *result) markdown() string {
	var b strings.Builder
	totalAudit := 0.0
	for _, n := range r.audits {
		totalAudit += n
	}
	deliberateN := 0
	for _, n := range r.expected {
		deliberateN += n
	}
	unexpected := max(totalAudit-float64(deliberateN), 0)
	fpShare := 100 * unexpected / r.decisions
	fmt.Fprintf(&b, "## Soak: the example policy in audit mode under a mixed workload\n\n")
	fmt.Fprintf(&b, "`make soak SOAK_MINUTES=%.0f` on %s: the appliance (Debian 12, kernel %s, 2 vCPUs under TCG, "+
		"no KVM) runs `%s` with `mode = \"audit\"` while `soak-workload.service` loops over package manager queries "+
		"(`dpkg-query`, `apt-cache`, `dpkg --verify`), reads of every `/usr/share/doc/*/copyright`, a `find` of `/usr/lib`, "+
		"20 process spawns and 5 loopback HTTP fetches (busybox httpd and wget) a round. "+
		"Three deliberate would-block accesses (a read of `/etc/shadow`, an exec from `/tmp`, a connect to "+
		"169.254.169.254) run in their own units at the start, the middle and the end. CPU is the agent process's user+system "+
		"time over the guest's uptime (100%% is one vCPU); TCG makes every figure of the guest slower than on hardware.\n\n",
		r.length.Minutes(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), r.kernel, exampleP)
	fmt.Fprintf(&b, "| what | measured | phase-0 threshold (seed) | met |\n| --- | ---: | --- | --- |\n")
	fmt.Fprintf(&b, "| duration (guest clock) | %s, %s workload rounds | | |\n", r.length.Round(time.Second), r.rounds)
	fmt.Fprintf(&b, "| agent CPU, average | %.2f%% | < 5%% | %s |\n", r.cpuAvg, verdict(r.cpuAvg < 5 && !r.pidChanged))
	fmt.Fprintf(&b, "| agent CPU, busiest %s window | %.2f%% | | |\n", r.window, r.cpuMax)
	fmt.Fprintf(&b, "| agent RSS, peak (VmHWM) | %s (largest sample %s) | < 50 MB | %s |\n", mb(r.hwm), mb(r.rssMax), verdict(r.hwm < 50*1024))
	fmt.Fprintf(&b, "| ring buffer drops | %.0f (events not itemized: %.0f) | 0 | %s |\n", r.drops, r.overflow, verdict(r.drops == 0))
	fmt.Fprintf(&b, "| agent restarts (systemd NRestarts) | %s (agent starts since boot: %.0f) | 0, no crashes | %s |\n",
		r.restarts, r.starts, verdict(r.restarts == "0" && r.starts <= 1 && !r.pidChanged))
	fmt.Fprintf(&b, "| decisions | %.0f | | |\n", r.decisions)
	fmt.Fprintf(&b, "| would-blocks | %.0f, of which %d deliberate | | |\n", totalAudit, deliberateN)
	fmt.Fprintf(&b, "| would-blocks not deliberate, share of decisions | %.0f, %.4f%% | < 0.01%% false positives | %s |\n\n",
		unexpected, fpShare, verdict(fpShare < 0.01))
	rules := make([]string, 0, len(r.audits))
	for id := range r.audits {
		rules = append(rules, id)
	}
	sort.Strings(rules)
	fmt.Fprintf(&b, "Would-blocks by rule (the agent's counters): ")
	for i, id := range rules {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "`%s` %.0f (deliberate %d)", id, r.audits[id], r.expected[id])
	}
	b.WriteString(".\n\n")
	switch {
	case r.reportErr != nil:
		fmt.Fprintf(&b, "`aegisbpf audit report` failed: %v.\n", r.reportErr)
	case len(r.otherBlocks) == 0:
		b.WriteString("`aegisbpf audit report` shows every deliberate access and nothing else.\n")
	default:
		b.WriteString("`aegisbpf audit report` shows every deliberate access and, besides them:\n\n")
		for _, o := range r.otherBlocks {
			fmt.Fprintf(&b, "- %s\n", o)
		}
	}
	return b.String()
}
