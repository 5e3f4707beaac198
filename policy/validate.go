package policy

import "fmt"

// validate runs the checks that span rules or fields. Checks within a
// rule skip a rule that already has a problem, so one mistake is reported
// once.
func (d *decoder) validate(p *Policy) {
	crit := criticalPaths()
	for n := range p.rules {
		r := &p.rules[n]
		if r.bad {
			continue
		}
		touched := d.hostSafety(r, crit)
		if r.kind == KindProtect && r.protect == ProtectAgent && !hasPID1(r.pids) {
			touched = true
			if !r.force {
				d.valuef(r.at().key("exempt_pids"), "add 1, or set force = true if you mean it",
					"exempt_pids does not contain 1: systemd (PID 1) could not stop or restart the agent")
			}
		}
		if r.force && !touched {
			d.keyf(r.at().key("force"), "remove it, so that force stays a deliberate exception",
				"force = true is not needed: this rule denies nothing host-critical")
		}
		d.scope(r)
	}
	d.uniqueIDs(p.rules)
	d.capacity(p.rules)
}

func hasPID1(pids []pidTarget) bool {
	for _, p := range pids {
		if p.pid == 1 {
			return true
		}
	}
	return false
}

// scope checks that a rule's exemptions leave it something to apply to.
func (d *decoder) scope(r *rule) {
	for _, e := range r.exempt {
		at := r.at().key("exempt_cgroups").elem(e.j)
		if e.s == "/" {
			d.valuef(at, "remove the rule, or exempt narrower cgroups",
				`exempt_cgroups holds "/", so the rule applies to no process`)
			continue
		}
		for _, c := range r.cgroups {
			if underSubtree(c.s, e.s) {
				d.valuef(at, "remove one of them",
					"exempt cgroup %q covers scoped cgroup %q: the rule would never apply there", e.s, c.s)
			}
		}
	}
}

// uniqueIDs reports every occurrence of an id used more than once.
func (d *decoder) uniqueIDs(rules []rule) {
	seen := make(map[string][]int, len(rules))
	for n, r := range rules {
		if r.id != "" {
			seen[r.id] = append(seen[r.id], n)
		}
	}
	for n, r := range rules {
		uses := seen[r.id]
		if len(uses) < 2 {
			continue
		}
		other := uses[0]
		if other == n {
			other = uses[1]
		}
		d.probs = append(d.probs, problem{at: r.at().key("id"), value: true,
			msg:  fmt.Sprintf("duplicate id %q", r.id),
			hint: "also used at {ref}; ids are unique across all rules", ref: rules[other].at().key("id"), hasRef: true})
	}
}

// capacity reports the first entry beyond each map's capacity. Counting
// is cheap; only a policy over a limit is walked again to find the entry.
func (d *decoder) capacity(rules []rule) {
	var files, execs, protects, v4, v6 int
	cgroups := map[string]bool{}
	for n := range rules {
		r := &rules[n]
		switch r.kind {
		case KindFile:
			files += r.targets()
		case KindExec:
			execs += r.targets()
		case KindNetwork:
			for _, c := range r.cidrs {
				if c.p.Addr().Is4() {
					v4++
				} else {
					v6++
				}
			}
		case KindProtect:
			protects++
		}
		for _, t := range r.cgroups {
			cgroups[t.s] = true
		}
		for _, t := range r.exempt {
			cgroups[t.s] = true
		}
	}
	if files > MaxFileTargets {
		d.overTargets(rules, KindFile, MaxFileTargets, "too many file rule targets")
	}
	if execs > MaxExecTargets {
		d.overTargets(rules, KindExec, MaxExecTargets, "too many exec rule targets")
	}
	if v4 > MaxCIDRsPerFamily {
		d.overCIDRs(rules, true, "too many IPv4 CIDRs")
	}
	if v6 > MaxCIDRsPerFamily {
		d.overCIDRs(rules, false, "too many IPv6 CIDRs")
	}
	if protects > MaxProtectRules {
		d.overProtect(rules)
	}
	if len(cgroups) > MaxCgroups {
		d.overCgroups(rules)
	}
}

func (d *decoder) over(at keyPath, n, limit int, what, hint string) {
	d.valuef(at, hint, "%s: this is number %d, the limit is %d", what, n, limit)
}

func (d *decoder) overTargets(rules []rule, kind Kind, limit int, what string) {
	count := 0
	for n := range rules {
		r := &rules[n]
		if r.kind != kind {
			continue
		}
		for _, f := range []struct {
			name string
			ts   []target
		}{{"paths", r.paths}, {"subtrees", r.subtrees}} {
			for _, t := range f.ts {
				if count++; count == limit+1 {
					d.over(r.at().key(f.name).elem(t.j), count, limit, what, "cover files with subtrees instead")
					return
				}
			}
		}
		for _, t := range r.inodes {
			if count++; count == limit+1 {
				d.over(r.at().key("inodes").elem(t.j), count, limit, what, "cover files with subtrees instead")
				return
			}
		}
	}
}

func (d *decoder) overCIDRs(rules []rule, v4 bool, what string) {
	count := 0
	for n := range rules {
		for _, c := range rules[n].cidrs {
			if c.p.Addr().Is4() != v4 {
				continue
			}
			if count++; count == MaxCIDRsPerFamily+1 {
				d.over(rules[n].at().key("cidrs").elem(c.j), count, MaxCIDRsPerFamily, what,
					"aggregate them into shorter prefixes")
				return
			}
		}
	}
}

func (d *decoder) overProtect(rules []rule) {
	count := 0
	for n := range rules {
		if rules[n].kind == KindProtect {
			if count++; count == MaxProtectRules+1 {
				d.over(rules[n].at(), count, MaxProtectRules, "too many protect rules", "merge their scopes")
				return
			}
		}
	}
}

func (d *decoder) overCgroups(rules []rule) {
	cgroups := map[string]bool{}
	for n := range rules {
		r := &rules[n]
		for _, f := range []struct {
			name string
			ts   []target
		}{{"cgroups", r.cgroups}, {"exempt_cgroups", r.exempt}} {
			for _, t := range f.ts {
				if cgroups[t.s] {
					continue
				}
				if cgroups[t.s] = true; len(cgroups) == MaxCgroups+1 {
					d.over(r.at().key(f.name).elem(t.j), len(cgroups), MaxCgroups, "too many distinct cgroups",
						"scope rules by parent cgroups")
					return
				}
			}
		}
	}
}
