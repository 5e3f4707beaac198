package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// auditReport is the part of `aegisbpf audit report --json` the soak
// reads: per rule, the cgroups and binaries behind its would-blocks.
type auditReport struct {
	Rules []struct {
		Rule       string `json:"rule"`
		WouldBlock uint64 `json:"would_block"`
		Cgroups    []struct {
			Cgroup struct {
				ID    uint64 `json:"id"`
				Path  string `json:"path"`
				Unit  string `json:"unit"`
				State string `json:"state"`
			} `json:"cgroup"`
			Count    uint64 `json:"count"`
			Binaries []struct {
				Name  string `json:"name"`
				Count uint64 `json:"count"`
			} `json:"binaries"`
		} `json:"cgroups"`
	} `json:"rules"`
}

const deliberateUnit = "soak-deliberate.service"

func (s *soak) auditReport(since string) (*auditReport, error) {
	res, err := s.vm.Exec(s.ctx, "aegisbpf audit report --json --since "+since)
	if err != nil {
		return nil, err
	}
	if res.Exit != 0 {
		return nil, fmt.Errorf("exit %d: %s", res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	var r auditReport
	if err := json.Unmarshal(res.Stdout, &r); err != nil {
		return nil, fmt.Errorf("parsing its JSON: %w", err)
	}
	return &r, nil
}

// shows reports whether the report lists would-blocks of rule from the
// deliberate unit.
func (a *auditReport) shows(rule string) bool {
	for _, r := range a.Rules {
		if r.Rule != rule {
			continue
		}
		for _, c := range r.Cgroups {
			if c.Cgroup.Unit == deliberateUnit && c.Count > 0 {
				return true
			}
		}
	}
	return false
}

// compare lists the would-blocks the report shows from anything but the
// deliberate unit, and counts them.
func (r *result) compare() {
	if r.report == nil {
		return
	}
	for _, rule := range r.report.Rules {
		for _, c := range rule.Cgroups {
			if c.Cgroup.Unit == deliberateUnit {
				continue
			}
			who := c.Cgroup.Path
			if who == "" {
				who = fmt.Sprintf("cgroup id %d (%s)", c.Cgroup.ID, c.Cgroup.State)
			}
			var bins []string
			for _, b := range c.Binaries {
				bins = append(bins, fmt.Sprintf("%s %d", b.Name, b.Count))
			}
			r.unexpected += float64(c.Count)
			r.otherBlocks = append(r.otherBlocks, fmt.Sprintf("`%s`: %d from `%s` (%s)", rule.Rule, c.Count, who, strings.Join(bins, ", ")))
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
	fpShare := 100 * r.unexpected / r.decisions
	fmt.Fprintf(&b, "## Soak: the example policy in audit mode under a mixed workload\n\n")
	fmt.Fprintf(&b, "`make soak SOAK_MINUTES=%.0f` on %s: the appliance (Debian 12, kernel %s, 2 vCPUs under TCG, "+
		"no KVM) runs `%s` with `mode = \"audit\"` while `soak-workload.service` loops over package manager queries "+
		"(`dpkg-query`, `apt-cache`, `dpkg --verify`), reads of every `/usr/share/doc/*/copyright`, a `find` of `/usr/lib`, "+
		"20 process spawns and 5 loopback HTTP fetches (busybox httpd and wget) a round. "+
		"Three deliberate would-block accesses (a read of `/etc/shadow`, an exec from `/tmp`, a connect to "+
		"169.254.169.254) run in `soak-deliberate.service` at the start, the middle and the end. CPU is the agent process's user+system "+
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
	fmt.Fprintf(&b, "| would-blocks (the agent's counters, every hook that matched) | %.0f, for %d deliberate accesses | | |\n", totalAudit, deliberateN)
	if r.reportErr == nil {
		fmt.Fprintf(&b, "| would-blocks from anything but the deliberate unit (audit report), share of decisions | %.0f, %.4f%% | < 0.01%% false positives | %s |\n",
			r.unexpected, fpShare, verdict(fpShare < 0.01))
	}
	b.WriteString("\n")
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
		fmt.Fprintf(&b, "`%s` %.0f (deliberate accesses %d)", id, r.audits[id], r.expected[id])
	}
	b.WriteString(".\n\n")
	switch {
	case r.reportErr != nil:
		fmt.Fprintf(&b, "`aegisbpf audit report` failed: %v.\n", r.reportErr)
	case len(r.otherBlocks) == 0:
		b.WriteString("`aegisbpf audit report` shows the deliberate accesses under their rules, from `soak-deliberate.service`, and nothing else.\n")
	default:
		b.WriteString("`aegisbpf audit report` shows the deliberate accesses under their rules, from `soak-deliberate.service`, and besides them:\n\n")
		for _, o := range r.otherBlocks {
			fmt.Fprintf(&b, "- %s\n", o)
		}
	}
	return b.String()
}
