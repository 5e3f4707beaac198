package audit

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/aegisbpf/aegisbpf/policy"
)

// ErrNotApplied is wrapped by SuggestPolicy's error when the edited policy
// does not mean what the suggestion intended; the draft is then refused.
var ErrNotApplied = errors.New("the suggested changes could not be applied to the policy")

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// SuggestPolicy returns the policy in src (read from file) with the
// suggested exemptions of r applied: entries are added to each rule's
// exempt_cgroups, with a comment each, and everything else of the file is
// kept as written. The result is checked with the policy validator, and
// its compiled form must differ from the original's only by the added
// exemptions. An invalid src returns the validator's policy.Problems.
func SuggestPolicy(r *Report, file string, src []byte) ([]byte, error) {
	orig, err := policy.Parse(file, src)
	if err != nil {
		return nil, err
	}
	c0 := policy.Compile(orig)
	rules := map[string]*policy.Rule{}
	for i := range c0.Rules {
		rules[c0.Rules[i].ID] = &c0.Rules[i]
	}
	text := string(src)
	tables, err := tomlScan(text)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	var edits []edit
	var top bytes.Buffer
	r.header(&top)
	want := map[string][]string{} // rule id -> exempt_cgroups expected after the edit
	for i := range r.Rules {
		rr := &r.Rules[i]
		pr := rules[rr.Rule]
		if pr == nil {
			fmt.Fprintf(&top, "#\n# rule %s: %d would-block %s, but %s has no rule %s (the events came from another policy)\n",
				oneLine(rr.Rule), rr.WouldBlock, plural64(rr.WouldBlock, "event"), oneLine(file), oneLine(rr.Rule))
			continue
		}
		p := planRule(rr, pr.Cgroups, pr.ExemptCgroups)
		t := findTable(tables, pr.Kind.String(), pr.ID)
		if t == nil {
			fmt.Fprintf(&top, "#\n# rule %s is not written as a [[%s]] table in %s: add these to its exempt_cgroups by hand:\n%s%s",
				oneLine(rr.Rule), pr.Kind, oneLine(file), p.entryLines("#   "), p.skipLines())
			continue
		}
		edits = append(edits, ruleEdits(text, t, &p)...)
		exempt := slices.Clone(pr.ExemptCgroups)
		for _, e := range p.add {
			exempt = append(exempt, e.path)
		}
		want[pr.ID] = exempt
	}
	top.WriteString("\n")
	edits = append(edits, edit{0, 0, top.String()})
	out := apply(text, edits)

	got, err := policy.Parse(file, []byte(out))
	if err != nil {
		return nil, fmt.Errorf("%w: the result does not validate:\n%w", ErrNotApplied, err)
	}
	if err := sameBut(c0, policy.Compile(got), want); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotApplied, err)
	}
	return []byte(out), nil
}

// findTable returns the [[kind]] table with id, if there is exactly one.
func findTable(tables []tomlTable, kind, id string) *tomlTable {
	var found *tomlTable
	for i := range tables {
		t := &tables[i]
		if t.array && t.kind == kind && t.id == id {
			if found != nil {
				return nil
			}
			found = t
		}
	}
	return found
}

// ruleEdits adds p's exemptions to table t of src, and its notes as
// comments after the table's last key.
func ruleEdits(src string, t *tomlTable, p *rulePlan) []edit {
	var out []edit
	notes := p.ruleTitle() + p.skipLines()
	a := t.exempt
	switch {
	case len(p.add) == 0:
	case a == nil:
		notes += "exempt_cgroups = [\n" + p.entryLines("  ") + "]\n"
	case a.multiline:
		indent := "  "
		if len(a.elems) > 0 {
			if ls := lineStart(src, a.elems[0][0]); strings.TrimSpace(src[ls:a.elems[0][0]]) == "" {
				indent = src[ls:a.elems[0][0]]
			}
		}
		if len(a.elems) > 0 && !a.comma {
			last := a.elems[len(a.elems)-1]
			out = append(out, edit{last[1], last[1], ","})
		}
		if ls := lineStart(src, a.close); strings.TrimSpace(src[ls:a.close]) == "" {
			out = append(out, edit{ls, ls, p.entryLines(indent)})
		} else {
			out = append(out, edit{a.close, a.close, "\n" + p.entryLines(indent)})
		}
	default:
		var b strings.Builder
		b.WriteString("[\n")
		for _, e := range a.elems {
			b.WriteString("  " + src[e[0]:e[1]] + ",\n")
		}
		b.WriteString(p.entryLines("  "))
		b.WriteString("]")
		out = append(out, edit{a.start, a.close + 1, b.String()})
	}
	at := t.end
	if at > 0 && src[at-1] != '\n' {
		notes = "\n" + notes
	}
	return append(out, edit{at, at, notes})
}

func lineStart(s string, i int) int { return strings.LastIndexByte(s[:i], '\n') + 1 }

// apply makes the edits, which must not overlap; insertions at one offset
// keep their order.
func apply(src string, edits []edit) string {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var b strings.Builder
	at := 0
	for _, e := range edits {
		b.WriteString(src[at:e.start])
		b.WriteString(e.text)
		at = e.end
	}
	b.WriteString(src[at:])
	return b.String()
}

// sameBut checks that b is a with each rule's exempt_cgroups replaced by
// want's (for the rules it names).
func sameBut(a, b *policy.Compiled, want map[string][]string) error {
	a2, b2 := *a, *b
	a2.Rules = slices.Clone(a.Rules)
	for i := range a2.Rules {
		if w, ok := want[a2.Rules[i].ID]; ok {
			w = slices.Clone(w)
			slices.Sort(w)
			a2.Rules[i].ExemptCgroups = slices.Compact(w)
		}
	}
	a2.Digest, b2.Digest = "", ""
	a2.Cgroups, b2.Cgroups = nil, nil
	for i := range a2.Rules {
		if i >= len(b2.Rules) || !reflect.DeepEqual(a2.Rules[i], b2.Rules[i]) {
			return fmt.Errorf("rule %s changed beyond its exempt_cgroups", a2.Rules[i].ID)
		}
	}
	if !reflect.DeepEqual(a2, b2) {
		return errors.New("the policy changed beyond the rules' exempt_cgroups")
	}
	return nil
}
