package audit

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aegisbpf/aegisbpf/policy"
)

// exemption is one cgroup a suggestion adds to a rule's exempt_cgroups.
type exemption struct {
	path     string
	count    uint64
	binaries map[string]uint64
	// covers lists observed cgroups below path, folded into this entry.
	covers []string
}

// skipped is a cgroup whose events a suggestion cannot exempt.
type skipped struct {
	cgroup   string
	count    uint64
	binaries map[string]uint64
	reason   string
}

// rulePlan is what a suggestion does for one rule.
type rulePlan struct {
	rule   string
	events uint64
	hooks  []string
	add    []exemption
	skip   []skipped
}

// planRule decides which cgroups of rr to exempt. scope and exempt are the
// rule's cgroups and exempt_cgroups when the policy is known.
func planRule(rr *RuleReport, scope, exempt []string) rulePlan {
	p := rulePlan{rule: rr.Rule, events: rr.WouldBlock, hooks: rr.Hooks}
	var cands []exemption
	for _, cg := range rr.Cgroups {
		bins := binaryCounts(cg.Binaries)
		reason := ""
		switch {
		case rr.Rule == noRule:
			reason = "no rule decided these events"
		case cg.Cgroup.State == CgroupGone:
			reason = "the cgroup is gone, so its path is unknown"
		case cg.Cgroup.State == CgroupUnknown:
			reason = "the events carry no cgroup id"
		case cg.Cgroup.State == CgroupUnresolved:
			reason = "cgroup ids were not resolved"
		case cg.Cgroup.Path == "/":
			reason = "the root cgroup: exempting it would turn the rule off"
		default:
			reason = exemptProblem(cg.Cgroup.Path, scope, exempt)
		}
		if reason != "" {
			p.skip = append(p.skip, skipped{cgroup: cg.Cgroup.String(), count: cg.Count, binaries: bins, reason: reason})
			continue
		}
		cands = append(cands, exemption{path: cg.Cgroup.Path, count: cg.Count, binaries: bins})
	}
	// Fold a cgroup into an observed ancestor: exempting the ancestor
	// covers it.
	slices.SortFunc(cands, func(a, b exemption) int { return strings.Compare(a.path, b.path) })
	for _, c := range cands {
		if i := slices.IndexFunc(p.add, func(a exemption) bool { return under(c.path, a.path) }); i >= 0 {
			top := &p.add[i]
			top.count += c.count
			top.covers = append(top.covers, c.path)
			for b, k := range c.binaries {
				top.binaries[b] += k
			}
			continue
		}
		p.add = append(p.add, c)
	}
	slices.SortStableFunc(p.add, func(a, b exemption) int { return cmp.Compare(b.count, a.count) })
	return p
}

// exemptProblem says why path cannot be added to a rule's exempt_cgroups,
// or returns "".
func exemptProblem(p string, scope, exempt []string) string {
	if !utf8.ValidString(p) {
		return "the path is not UTF-8, which a policy cannot hold"
	}
	for _, e := range exempt {
		if under(p, e) {
			return fmt.Sprintf("already exempt by %q (the events predate that exemption)", e)
		}
	}
	for _, s := range scope {
		if under(s, p) {
			return fmt.Sprintf("exempting it would turn the rule off in its scope cgroup %q", s)
		}
	}
	return checkCgroupPath(p)
}

// checkCgroupPath runs the policy validator over path as an exempt cgroup
// and returns its complaint, or "".
func checkCgroupPath(p string) string {
	src := "version = 1\nmode = \"audit\"\nserial = 0\n[[file]]\nid = \"probe\"\npaths = [\"/probe\"]\nexempt_cgroups = [" + tomlQuote(p) + "]\n"
	_, err := policy.Parse("probe", []byte(src))
	var probs policy.Problems
	if errors.As(err, &probs) && len(probs) > 0 {
		return "not valid in a policy: " + probs[0].Msg
	}
	if err != nil {
		return "not valid in a policy: " + err.Error()
	}
	return ""
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

func binaryCounts(gs []Group) map[string]uint64 {
	m := make(map[string]uint64, len(gs))
	for _, g := range gs {
		m[g.Name] += g.Count
	}
	return m
}

// binaryList formats binary counts, largest first: "sshd 10, cron 2".
func binaryList(m map[string]uint64) string {
	gs := make([]Group, 0, len(m))
	for k, v := range m {
		gs = append(gs, Group{Name: k, Count: v})
	}
	slices.SortFunc(gs, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Name, b.Name))
	})
	return oneLine(binaries(gs, 5))
}

// oneLine keeps a comment on its line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

// entryLines returns the exempt_cgroups elements of p, each with its
// comment, indented by indent and ending in a newline.
func (p *rulePlan) entryLines(indent string) string {
	var b strings.Builder
	for _, e := range p.add {
		fmt.Fprintf(&b, "%s%s, # %d %s: %s", indent, tomlQuote(e.path), e.count, plural64(e.count, "event"), binaryList(e.binaries))
		if len(e.covers) > 0 {
			fmt.Fprintf(&b, "; covers %s", oneLine(strings.Join(e.covers, ", ")))
		}
		if strings.HasSuffix(path.Base(e.path), ".scope") {
			b.WriteString("; a transient scope: its name may differ next time")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// skipLines returns comment lines for what p cannot exempt.
func (p *rulePlan) skipLines() string {
	if len(p.skip) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# not exempted (the policy exempts by cgroup only; review these accessors by hand):\n")
	for _, s := range p.skip {
		fmt.Fprintf(&b, "# - %s: %d %s: %s; %s\n", oneLine(s.cgroup), s.count, plural64(s.count, "event"), binaryList(s.binaries), oneLine(s.reason))
	}
	return b.String()
}

// kindOf infers the rule kind from the hooks that reported its events.
func kindOf(hooks []string) (kind string, guessed bool) {
	kinds := map[string]bool{}
	for _, h := range hooks {
		switch h {
		case "file_open":
			kinds["file"] = true
		case "exec", "mmap_exec", "mprotect_exec":
			kinds["exec"] = true
		case "connect", "sendmsg":
			kinds["network"] = true
		case "protect", "signal", "bpf", "umount":
			kinds["protect"] = true
		}
	}
	if len(kinds) == 1 {
		for k := range kinds {
			return k, false
		}
	}
	if kinds["exec"] {
		return "exec", true
	}
	return "file", true
}

// header is the comment that opens every suggestion.
func (r *Report) header(b *bytes.Buffer) {
	window := "all events in the input"
	if r.Since != "" {
		window = "last " + r.Since
	}
	fmt.Fprintf(b, "# Draft from `aegisbpf audit suggest`: review it; nothing was applied.\n")
	fmt.Fprintf(b, "# Source: %s, %s: %d would-block %s", oneLine(r.Source), window, r.WouldBlock, plural64(r.WouldBlock, "event"))
	if !r.First.IsZero() {
		fmt.Fprintf(b, ", %s to %s", stamp(r.First), stamp(r.Last))
	}
	b.WriteString(".\n")
	b.WriteString("# An exempt_cgroups entry exempts that cgroup and everything below it from\n")
	b.WriteString("# the rule: keep only accessors that are legitimate. Then raise serial, run\n")
	b.WriteString("# `aegisbpf policy check`, and sign.\n")
}

// Suggest returns a TOML draft of the exemptions that would stop the
// would-block events of r: for each rule, a table with its id and the
// exempt_cgroups to add to the rule of that id in the policy. Accessors
// whose cgroup cannot be exempted are listed as comments.
func Suggest(r *Report) []byte {
	var b bytes.Buffer
	r.header(&b)
	b.WriteString("# Merge each table into the rule with the same id in your policy, or run\n")
	b.WriteString("# `aegisbpf audit suggest --policy FILE` for the whole policy with the changes.\n")
	if len(r.Rules) == 0 {
		b.WriteString("\n# No would-block events: nothing to exempt.\n")
	}
	for i := range r.Rules {
		p := planRule(&r.Rules[i], nil, nil)
		fmt.Fprintf(&b, "\n# rule %s: %d would-block %s (%s)\n", oneLine(p.rule), p.events, plural64(p.events, "event"), strings.Join(p.hooks, ", "))
		if len(p.add) > 0 {
			kind, guessed := kindOf(p.hooks)
			fmt.Fprintf(&b, "[[%s]]", kind)
			if guessed {
				fmt.Fprintf(&b, " # kind guessed from the hooks: use the kind of rule %s in your policy", oneLine(p.rule))
			}
			fmt.Fprintf(&b, "\nid = %s\nexempt_cgroups = [\n%s]\n", tomlQuote(p.rule), p.entryLines("  "))
		}
		b.WriteString(p.skipLines())
	}
	return b.Bytes()
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && size == 1:
			// Not UTF-8: TOML cannot hold it; the validator refuses it.
			fmt.Fprintf(&b, `\u%04X`, utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

// ruleTitle is the one-line comment heading a rule's changes.
func (p *rulePlan) ruleTitle() string {
	return fmt.Sprintf("# audit suggest, rule %s: %d would-block %s", oneLine(p.rule), p.events, plural64(p.events, "event")) +
		" (" + strconv.Itoa(len(p.add)) + " " + plural(len(p.add), "exemption") + " added)\n"
}
