package audit

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// ReportFormat names the version of the JSON report; it changes only when
// a field changes meaning or is removed.
const ReportFormat = "aegisbpf.audit.report/v1"

// Actions of the journal's AEGIS_ACTION.
const (
	actionAudit = "audit"
	actionDeny  = "deny"
)

// noRule names the group of events no rule decided (an unresolved object).
const noRule = "(no rule)"

// Report is the would-block events of a window grouped for review. Every
// list is sorted by count, largest first, then by name.
type Report struct {
	Format string `json:"format"`
	// Source is "journal" or the input file's name.
	Source string `json:"source"`
	// Since is the window asked for ("24h0m0s"); empty for all the input.
	Since string `json:"since,omitempty"`
	// First and Last bound the events counted (zero when there are none).
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// WouldBlock counts audit events (allowed, would have been denied);
	// Denied enforced denials; Unresolved the events of objects the agent
	// could not resolve; NotItemized the events the agent counted but did
	// not describe (the report cannot group them).
	WouldBlock  uint64 `json:"would_block"`
	Denied      uint64 `json:"denied"`
	Unresolved  uint64 `json:"unresolved"`
	NotItemized uint64 `json:"not_itemized"`
	// Decisions is the agent's count of all decisions; nil when its
	// counters could not be read (CountersUnavailable says why).
	Decisions           *uint64 `json:"decisions"`
	CountersUnavailable string  `json:"counters_unavailable,omitempty"`
	// Rules holds each rule with would-block events.
	Rules []RuleReport `json:"rules"`
	// DeniedRules counts the enforced denials by rule (not analysed: they
	// are what the policy is for).
	DeniedRules []Group `json:"denied_rules"`
}

// RuleReport is one rule's would-block events.
type RuleReport struct {
	Rule       string    `json:"rule"`
	WouldBlock uint64    `json:"would_block"`
	First      time.Time `json:"first,omitzero"`
	Last       time.Time `json:"last,omitzero"`
	// Hooks are the LSM hooks that reported the events, sorted.
	Hooks []string `json:"hooks"`
	// Share relates the rule's would-blocks to all decisions, from the
	// agent's counters; nil when they are unavailable.
	Share    *Share        `json:"share"`
	Objects  []Group       `json:"objects"`
	Cgroups  []CgroupGroup `json:"cgroups"`
	Binaries []Group       `json:"binaries"`
}

// Share is a rule's would-blocks as a part of all decisions, both counted
// by the running agent.
type Share struct {
	WouldBlock uint64 `json:"would_block"`
	Decisions  uint64 `json:"decisions"`
	// Percent is 100 * WouldBlock / Decisions (0 with no decisions).
	Percent float64 `json:"percent"`
}

// Group is the events of one object, binary or rule.
type Group struct {
	Name  string    `json:"name"`
	Count uint64    `json:"count"`
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

// CgroupGroup is the events of one cgroup, with the binaries behind them.
type CgroupGroup struct {
	Cgroup   Cgroup    `json:"cgroup"`
	Count    uint64    `json:"count"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	Binaries []Group   `json:"binaries"`
}

// Options say where a report's data came from and how to resolve it.
type Options struct {
	Source string
	// Since is the window the events were read for, for the report's
	// header (0: all).
	Since time.Duration
	// Cutoff, when not zero, drops entries whose last event is before it:
	// journalctl selects a window itself, a saved input is cut here.
	Cutoff time.Time
	// Cgroups resolves cgroup ids; nil leaves them unresolved.
	Cgroups Cgroups
	// Counters are the agent's; nil with CountersErr when unavailable.
	Counters    *Counters
	CountersErr error
}

// counter accumulates a Group.
type counter struct {
	count       uint64
	first, last time.Time
}

func (c *counter) add(e *Entry) {
	c.count += e.Count
	if !e.First.IsZero() && (c.first.IsZero() || e.First.Before(c.first)) {
		c.first = e.First
	}
	if e.Last.After(c.last) {
		c.last = e.Last
	}
}

func (c *counter) group(name string) Group {
	return Group{Name: name, Count: c.count, First: c.first.UTC(), Last: c.last.UTC()}
}

type ruleAcc struct {
	counter
	hooks    map[string]bool
	objects  map[string]*counter
	cgroups  map[uint64]*cgroupAcc
	binaries map[string]*counter
}

type cgroupAcc struct {
	counter
	binaries map[string]*counter
}

func bump[K comparable](m map[K]*counter, k K, e *Entry) {
	c := m[k]
	if c == nil {
		c = &counter{}
		m[k] = c
	}
	c.add(e)
}

// Build groups the entries of in. It does no I/O but cgroup lookups.
func Build(in *Input, opt Options) *Report {
	r := &Report{Format: ReportFormat, Source: opt.Source, NotItemized: in.NotItemized,
		Rules: []RuleReport{}, DeniedRules: []Group{}}
	if opt.Since > 0 {
		r.Since = opt.Since.String()
	}
	cutoff := opt.Cutoff
	var all counter
	rules := map[string]*ruleAcc{}
	denied := map[string]*counter{}
	for i := range in.Entries {
		e := &in.Entries[i]
		if !cutoff.IsZero() && !e.Last.IsZero() && e.Last.Before(cutoff) {
			continue
		}
		all.add(e)
		rule := e.Rule
		if rule == "" {
			rule = noRule
		}
		switch e.Action {
		case actionDeny:
			r.Denied += e.Count
			bump(denied, rule, e)
			continue
		case actionAudit:
			r.WouldBlock += e.Count
		default:
			r.Unresolved += e.Count
			continue
		}
		ra := rules[rule]
		if ra == nil {
			ra = &ruleAcc{hooks: map[string]bool{}, objects: map[string]*counter{},
				cgroups: map[uint64]*cgroupAcc{}, binaries: map[string]*counter{}}
			rules[rule] = ra
		}
		ra.add(e)
		ra.hooks[e.Hook] = true
		bump(ra.objects, objectName(e), e)
		bump(ra.binaries, binaryName(e), e)
		ca := ra.cgroups[e.CgroupID]
		if ca == nil {
			ca = &cgroupAcc{binaries: map[string]*counter{}}
			ra.cgroups[e.CgroupID] = ca
		}
		ca.add(e)
		bump(ca.binaries, binaryName(e), e)
	}
	r.First, r.Last = all.first.UTC(), all.last.UTC()
	if all.count == 0 {
		r.First, r.Last = time.Time{}, time.Time{}
	}
	if opt.Counters != nil {
		d := opt.Counters.Decisions
		r.Decisions = &d
	} else if opt.CountersErr != nil {
		r.CountersUnavailable = opt.CountersErr.Error()
	} else {
		r.CountersUnavailable = "not asked for"
	}
	for id, ra := range rules {
		rr := RuleReport{Rule: id, WouldBlock: ra.count, First: ra.first.UTC(), Last: ra.last.UTC(),
			Objects: groups(ra.objects), Binaries: groups(ra.binaries)}
		for h := range ra.hooks {
			rr.Hooks = append(rr.Hooks, h)
		}
		slices.Sort(rr.Hooks)
		if c := opt.Counters; c != nil {
			s := &Share{WouldBlock: c.RuleAudit[id], Decisions: c.Decisions}
			if s.Decisions > 0 {
				s.Percent = 100 * float64(s.WouldBlock) / float64(s.Decisions)
			}
			rr.Share = s
		}
		for id, ca := range ra.cgroups {
			rr.Cgroups = append(rr.Cgroups, CgroupGroup{Cgroup: resolveCgroup(opt.Cgroups, id),
				Count: ca.count, First: ca.first.UTC(), Last: ca.last.UTC(), Binaries: groups(ca.binaries)})
		}
		slices.SortFunc(rr.Cgroups, func(a, b CgroupGroup) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Cgroup.Path, b.Cgroup.Path),
				cmp.Compare(a.Cgroup.ID, b.Cgroup.ID))
		})
		r.Rules = append(r.Rules, rr)
	}
	slices.SortFunc(r.Rules, func(a, b RuleReport) int {
		return cmp.Or(cmp.Compare(b.WouldBlock, a.WouldBlock), strings.Compare(a.Rule, b.Rule))
	})
	r.DeniedRules = groups(denied)
	return r
}

// groups returns m's groups sorted by count, largest first, then name.
func groups(m map[string]*counter) []Group {
	out := make([]Group, 0, len(m))
	for k, c := range m {
		out = append(out, c.group(k))
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Name, b.Name))
	})
	return out
}

// objectName names what an event was about: the path, the address, or
// for events without either the hook and its access (e.g. "protect
// (ptrace)").
func objectName(e *Entry) string {
	switch {
	case e.Path != "":
		return e.Path
	case e.Addr != "":
		if e.Protocol != "" {
			return e.Addr + "/" + e.Protocol
		}
		return e.Addr
	case e.Access != "":
		return e.Hook + " (" + e.Access + ")"
	}
	return e.Hook
}

func binaryName(e *Entry) string {
	if e.Comm == "" {
		return "(unknown)"
	}
	return e.Comm
}
