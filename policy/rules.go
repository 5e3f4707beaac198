package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// target is a normalized string value and the index of the array element
// it came from, so later checks can point at it.
type target struct {
	s string
	j int
}

type inodeTarget struct {
	ref InodeRef
	j   int
}

type cidrTarget struct {
	p netip.Prefix
	j int
}

// rule is one decoded rule of any kind; fields that do not apply to its
// kind stay empty.
type rule struct {
	kind Kind
	i    int // element of the kind's array of tables
	id   string
	mode Mode // 0: the policy's mode
	// force lets the rule deny what would break the host.
	force bool
	// bad records that the rule had a problem of its own, so checks that
	// span fields do not pile on.
	bad bool

	cgroups, exempt []target

	paths, subtrees []target // file and exec
	inodes          []inodeTarget
	access          Access

	cidrs []cidrTarget
	ports []PortRange
	proto Protocol

	protect ProtectKind
	pids    []pidTarget
	pidsSet bool
}

type pidTarget struct {
	pid uint32
	j   int
}

func (r *rule) at() keyPath { return ruleAt(r.kind, r.i) }

func (r *rule) targets() int { return len(r.paths) + len(r.subtrees) + len(r.inodes) }

func ruleKeys(kind Kind) []string {
	common := []string{"id", "mode", "force", "cgroups", "exempt_cgroups"}
	switch kind {
	case KindFile:
		return append(common, "paths", "subtrees", "inodes", "access")
	case KindExec:
		return append(common, "paths", "subtrees")
	case KindNetwork:
		return append(common, "cidrs", "ports", "protocol")
	default:
		return append(common, "kind", "exempt_pids")
	}
}

// rules decodes the array of tables of one kind and appends its rules.
func (d *decoder) rules(out []rule, kind Kind, v any) []rule {
	at := topKey(kind.String())
	elems, ok := v.([]map[string]any)
	if !ok {
		arr, isArr := v.([]any)
		if !isArr {
			d.wrongType(at, "an array of tables", v, fmt.Sprintf("start each rule with [[%s]]", kind))
			return out
		}
		for i, e := range arr {
			m, isMap := e.(map[string]any)
			if !isMap {
				d.wrongType(ruleAt(kind, i), "a table", e, fmt.Sprintf("start each rule with [[%s]]", kind))
				continue
			}
			elems = append(elems, m)
		}
		if len(elems) != len(arr) {
			return out
		}
	}
	for i, m := range elems {
		out = append(out, rule{kind: kind, i: i, access: AccessAny, proto: ProtoAny})
		d.rule(&out[len(out)-1], m)
	}
	return out
}

// rule decodes m into r, whose kind and index are set.
func (d *decoder) rule(r *rule, m map[string]any) {
	kind := r.kind
	before := len(d.probs)
	for k, v := range m { // problems are sorted by position later
		d.ruleKey(r, k, v)
	}
	if _, ok := m["id"]; !ok {
		d.keyf(r.at(), missingHint("id"), "%s rule has no id", kind)
	}
	ok := len(d.probs) == before
	switch kind {
	case KindFile:
		if ok && r.targets() == 0 {
			d.keyf(r.at(), "add paths, subtrees or inodes", "file rule %q has no targets", r.id)
		}
	case KindExec:
		if ok && r.targets() == 0 {
			d.keyf(r.at(), "add paths or subtrees", "exec rule %q has no targets", r.id)
		}
	case KindNetwork:
		if ok && len(r.cidrs) == 0 {
			d.keyf(r.at(), `add cidrs = ["..."]; use "0.0.0.0/0" and "::/0" to match every address`,
				"network rule %q has no cidrs", r.id)
		}
	case KindProtect:
		d.protectDefaults(r, m)
	}
	r.bad = len(d.probs) > before
}

func (d *decoder) ruleKey(r *rule, k string, v any) {
	at := r.at().key(k)
	switch k {
	case "id":
		if s, ok := d.str(at, v); ok {
			r.id = s
			d.checkID(at, s)
		}
		return
	case "mode":
		if s, ok := d.str(at, v); ok {
			r.mode = d.mode(at, s)
		}
		return
	case "force":
		r.force, _ = d.boolean(at, v)
		return
	case "cgroups":
		r.cgroups = d.paths(at, v, "cgroup", pathCgroup)
		return
	case "exempt_cgroups":
		r.exempt = d.paths(at, v, "cgroup", pathCgroup)
		return
	}
	switch {
	case k == "paths" && (r.kind == KindFile || r.kind == KindExec):
		r.paths = d.paths(at, v, "path", pathExact)
	case k == "subtrees" && (r.kind == KindFile || r.kind == KindExec):
		r.subtrees = d.paths(at, v, "subtree", pathSubtree)
	case k == "inodes" && r.kind == KindFile:
		r.inodes = d.inodes(at, v)
	case k == "access" && r.kind == KindFile:
		if s, ok := d.str(at, v); ok {
			r.access = d.access(at, s)
		}
	case k == "cidrs" && r.kind == KindNetwork:
		r.cidrs = d.cidrs(at, v)
	case k == "ports" && r.kind == KindNetwork:
		r.ports = d.ports(at, v)
	case k == "protocol" && r.kind == KindNetwork:
		if s, ok := d.str(at, v); ok {
			r.proto = d.protocol(at, s)
		}
	case k == "kind" && r.kind == KindProtect:
		if s, ok := d.str(at, v); ok {
			r.protect = d.protectKind(at, s)
		}
	case k == "exempt_pids" && r.kind == KindProtect:
		r.pids, r.pidsSet = d.pids(at, v), true
	case slices.Contains(topKeys(), k):
		d.keyf(at, fmt.Sprintf("top-level keys go before the first [[table]]; in [[%s]] the known keys are: %s",
			r.kind, strings.Join(ruleKeys(r.kind), ", ")), "unknown key %q", k)
	default:
		d.unknownKey(at, k, ruleKeys(r.kind))
	}
}

func (d *decoder) protectDefaults(r *rule, m map[string]any) {
	if _, ok := m["kind"]; !ok {
		d.keyf(r.at(), "add kind = "+choices("ptrace", "module_load", "agent"), "protect rule has no kind")
		return
	}
	switch {
	case r.protect == ProtectAgent && !r.pidsSet:
		r.pids = []pidTarget{{pid: 1, j: -1}}
	case r.protect != ProtectAgent && r.protect != 0 && r.pidsSet:
		d.keyf(r.at().key("exempt_pids"), `remove it, or use kind = "agent"`,
			`exempt_pids applies only to kind = "agent"`)
	}
}

func (d *decoder) access(at keyPath, s string) Access {
	a, ok := parseAccess(s)
	if !ok {
		d.badChoice(at, "access", s, "read", "write", "any")
	}
	return a
}

func (d *decoder) protocol(at keyPath, s string) Protocol {
	p, ok := parseProtocol(s)
	if !ok {
		d.badChoice(at, "protocol", s, "tcp", "udp", "any")
		return ProtoAny
	}
	return p
}

func (d *decoder) protectKind(at keyPath, s string) ProtectKind {
	p, ok := parseProtectKind(s)
	if !ok {
		d.badChoice(at, "kind", s, "ptrace", "module_load", "agent")
	}
	return p
}

func (d *decoder) badChoice(at keyPath, what, s string, valid ...string) {
	hint := "use " + choices(valid...)
	if c, ok := suggest(strings.ToLower(s), valid); ok {
		hint = fmt.Sprintf("did you mean %q? ", c) + hint
	}
	d.valuef(at, hint, "%s %q is not valid", what, s)
}
