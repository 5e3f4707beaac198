package policy

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// maxShownTargets is how many targets WriteSummary lists per rule.
const maxShownTargets = 3

// WriteSummary prints the compiled form for people: name, mode, serial,
// digest, counts, and one line per rule in index order with its scope and
// first targets. source names the policy file.
func (c *Compiled) WriteSummary(w io.Writer, source string) error {
	kinds := map[Kind]int{}
	for _, r := range c.Rules {
		kinds[r.Kind]++
	}
	name := c.Name
	if name == "" {
		name = "(unnamed)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "policy:\t%s (%s)\nmode:\t%s\nserial:\t%d\ndigest:\t%s\n", name, source, c.Mode, c.Serial, c.Digest)
	fmt.Fprintf(tw, "rules:\t%d (file %d, exec %d, network %d, protect %d)\n", len(c.Rules),
		kinds[KindFile], kinds[KindExec], kinds[KindNetwork], kinds[KindProtect])
	fmt.Fprintf(tw, "entries:\tfile %d, exec %d, net4 %d, net6 %d, cgroups %d\n\n",
		len(c.Files), len(c.Execs), len(c.Net4), len(c.Net6), len(c.Cgroups))
	if err := tw.Flush(); err != nil {
		return err
	}

	targets := make([][]string, len(c.Rules))
	add := func(rule uint32, s string) { targets[rule] = append(targets[rule], s) }
	for _, f := range c.Files {
		add(f.Rule, fileTarget(f.Match, f.Path, f.Inode)+" ("+f.Access.String()+")")
	}
	for _, x := range c.Execs {
		add(x.Rule, fileTarget(x.Match, x.Path, InodeRef{}))
	}
	for _, nets := range [][]NetEntry{c.Net4, c.Net6} {
		for _, n := range nets {
			add(n.Rule, netTarget(n))
		}
	}
	for _, p := range c.Protections {
		s := p.Kind.String()
		if len(p.ExemptPIDs) > 0 {
			s += fmt.Sprintf(" (exempt PIDs %s)", strings.Trim(fmt.Sprint(p.ExemptPIDs), "[]"))
		}
		add(p.Rule, s)
	}

	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tID\tKIND\tMODE\tSCOPE\tTARGETS")
	for i, r := range c.Rules {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Index, r.ID, r.Kind, r.Mode, scopeText(r), shorten(targets[i]))
	}
	return tw.Flush()
}

func fileTarget(m Match, path string, ino InodeRef) string {
	switch m {
	case MatchSubtree:
		return strings.TrimSuffix(path, "/") + "/ (subtree)"
	case MatchInode:
		return "inode " + ino.String()
	}
	return path
}

func netTarget(n NetEntry) string {
	s := n.Prefix.String()
	if len(n.Ports) > 0 {
		ps := make([]string, len(n.Ports))
		for i, p := range n.Ports {
			ps[i] = fmt.Sprint(p.Lo)
			if p.Lo != p.Hi {
				ps[i] += fmt.Sprintf("-%d", p.Hi)
			}
		}
		s += " port " + strings.Join(ps, ",")
	}
	if n.Protocol != ProtoAny {
		s += " " + n.Protocol.String()
	}
	return s
}

func scopeText(r Rule) string {
	var parts []string
	if len(r.Cgroups) > 0 {
		parts = append(parts, "in "+strings.Join(r.Cgroups, ","))
	}
	if len(r.ExemptCgroups) > 0 {
		parts = append(parts, "except "+strings.Join(r.ExemptCgroups, ","))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

func shorten(ts []string) string {
	if len(ts) > maxShownTargets {
		return strings.Join(ts[:maxShownTargets], ", ") + fmt.Sprintf(", +%d more", len(ts)-maxShownTargets)
	}
	return strings.Join(ts, ", ")
}
