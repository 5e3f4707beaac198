package audit

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names read from the agent (docs/METRICS.md).
const (
	metricDecisions     = "aegisbpf_decisions_total"
	metricRuleDecisions = "aegisbpf_rule_decisions_total"
)

// Counters are the running agent's decision counters. They count since the
// applied BPF instance started (a policy change or restart resets them), a
// window that need not match the journal's.
type Counters struct {
	// Decisions is every decision of every hook and action.
	Decisions uint64
	// RuleAudit and RuleDeny are the would-blocks and denials by rule id.
	RuleAudit map[string]uint64
	RuleDeny  map[string]uint64
}

// ParseCounters reads the counters from the Prometheus text exposition the
// agent serves. An exposition without aegisbpf_decisions_total is an error:
// it is not the agent's, or the agent has no policy applied.
func ParseCounters(r io.Reader) (*Counters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	dec, ok := fams[metricDecisions]
	if !ok {
		return nil, fmt.Errorf("no %s in the metrics (is a policy applied?)", metricDecisions)
	}
	c := &Counters{RuleAudit: map[string]uint64{}, RuleDeny: map[string]uint64{}}
	for _, m := range dec.GetMetric() {
		c.Decisions += counterValue(m)
	}
	if rd, ok := fams[metricRuleDecisions]; ok {
		for _, m := range rd.GetMetric() {
			var rule, action string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "rule":
					rule = l.GetValue()
				case "action":
					action = l.GetValue()
				}
			}
			switch action {
			case "audit":
				c.RuleAudit[rule] += counterValue(m)
			case "deny":
				c.RuleDeny[rule] += counterValue(m)
			}
		}
	}
	return c, nil
}

func counterValue(m *dto.Metric) uint64 {
	var v float64
	switch {
	case m.GetCounter() != nil:
		v = m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		v = m.GetUntyped().GetValue()
	case m.GetGauge() != nil:
		v = m.GetGauge().GetValue()
	}
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return uint64(math.Round(v))
}

// ScrapeCounters reads the counters from the agent's metrics socket.
func ScrapeCounters(ctx context.Context, socket string) (*Counters, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://aegisbpf/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", socket, resp.Status)
	}
	c, err := ParseCounters(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", socket, err)
	}
	return c, nil
}
