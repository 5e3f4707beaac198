package policy

import (
	"slices"
	"strings"
)

// A rule that denies exec or read of a host-critical path, or of a subtree
// holding one, would stop the host from booting or running programs, or
// stop the agent itself. Such a rule needs force = true.

type critical struct {
	path string
	what string
}

// criticalPaths returns the host-critical paths: the primary names first,
// then the other name merged-/usr systems give each (/lib and /usr/lib).
func criticalPaths() []critical {
	out := []critical{
		{"/sbin/init", "PID 1's binary"},
		{"/lib/systemd/systemd", "systemd, PID 1's binary"},
		{"/lib64/ld-linux-x86-64.so.2", "the dynamic loader"},
		{"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "the dynamic loader"},
		{"/etc/ld.so.cache", "the dynamic loader's cache"},
		{"/usr/bin/aegisbpf", "the AegisBPF agent"},
	}
	for _, c := range out[:len(out):len(out)] {
		for _, dir := range []string{"/bin/", "/sbin/", "/lib/", "/lib64/"} {
			switch {
			case strings.HasPrefix(c.path, dir):
				out = append(out, critical{"/usr" + c.path, c.what})
			case strings.HasPrefix(c.path, "/usr"+dir):
				out = append(out, critical{strings.TrimPrefix(c.path, "/usr"), c.what})
			}
		}
	}
	return out
}

// CriticalPaths returns the paths a rule may deny exec or read of only
// with force = true, sorted.
func CriticalPaths() []string {
	var out []string
	for _, c := range criticalPaths() {
		out = append(out, c.path)
	}
	slices.Sort(out)
	return out
}

// underSubtree reports whether p is dir or below it.
func underSubtree(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// hostSafety reports the targets of r that would break the host, and
// returns whether r touches any host-critical path.
func (d *decoder) hostSafety(r *rule, crit []critical) bool {
	var verb string
	switch {
	case r.kind == KindExec:
		verb = "exec"
	case r.kind == KindFile && r.access&AccessRead != 0:
		verb = "read"
	default:
		return false
	}
	const hint = "set force = true on this rule if you mean it"
	touched := false
	for _, t := range r.paths {
		for _, c := range crit {
			if t.s == c.path {
				touched = true
				if !r.force {
					d.valuef(r.at().key("paths").elem(t.j), hint,
						"denying %s of %q would break the host: it is %s", verb, t.s, c.what)
				}
			}
		}
	}
	for _, t := range r.subtrees {
		for _, c := range crit {
			if underSubtree(c.path, t.s) {
				touched = true
				if !r.force {
					d.valuef(r.at().key("subtrees").elem(t.j), hint,
						"denying %s under %q would break the host: it holds %q, %s", verb, t.s, c.path, c.what)
				}
				break
			}
		}
	}
	return touched
}
