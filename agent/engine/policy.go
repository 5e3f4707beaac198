package engine

import (
	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/policy"
)

// FromPolicy turns a compiled policy into a Spec. Rule indexes are kept,
// so event and counter rule indexes are the policy's. unsupported lists the
// ids of rules this engine cannot enforce, so the agent can say so instead
// of pretending; every rule kind of policy format version 1 is enforced.
func FromPolicy(c *policy.Compiled) (spec Spec, unsupported []string) {
	spec.Enforce = c.Mode == policy.ModeEnforce
	for _, r := range c.Rules {
		spec.Rules = append(spec.Rules, RuleSpec{
			ID:     r.ID,
			Audit:  r.Mode != policy.ModeEnforce,
			Only:   r.Cgroups,
			Except: r.ExemptCgroups,
		})
		if r.Mode == policy.ModeEnforce {
			spec.Enforce = true
		}
	}
	for _, p := range c.Protections {
		switch p.Kind {
		case policy.ProtectPtrace:
			spec.Protections = append(spec.Protections, ProtectTarget{Rule: p.Rule, Kind: ProtectPtrace})
		case policy.ProtectModuleLoad:
			spec.Protections = append(spec.Protections, ProtectTarget{Rule: p.Rule, Kind: ProtectModuleLoad})
		case policy.ProtectAgent:
			spec.Agent = append(spec.Agent, AgentTarget{Rule: p.Rule, ExemptPIDs: p.ExemptPIDs})
		default:
			unsupported = append(unsupported, c.Rules[p.Rule].ID)
		}
	}
	for _, f := range c.Files {
		var access Access
		if f.Access&policy.AccessRead != 0 {
			access |= AccessRead
		}
		if f.Access&policy.AccessWrite != 0 {
			access |= AccessWrite
		}
		t := Target{Rule: f.Rule, Access: access}
		switch f.Match {
		case policy.MatchInode:
			t.Inode = &bpf.AegisInodeKey{Ino: f.Inode.Ino, Dev: f.Inode.KernelDev()}
		default:
			t.Path = f.Path
			t.Subtree = f.Match == policy.MatchSubtree
		}
		spec.Targets = append(spec.Targets, t)
	}
	for _, x := range c.Execs {
		spec.Targets = append(spec.Targets, Target{Rule: x.Rule, Path: x.Path, Subtree: x.Match == policy.MatchSubtree, Access: AccessExec})
	}
	for _, list := range [][]policy.NetEntry{c.Net4, c.Net6} {
		for _, n := range list {
			spec.Nets = append(spec.Nets, netTarget(n))
		}
	}
	return spec, unsupported
}

func netTarget(n policy.NetEntry) NetTarget {
	t := NetTarget{Rule: n.Rule, Prefix: n.Prefix, Protocol: uint8(n.Protocol)}
	for _, p := range n.Ports {
		t.Ports = append(t.Ports, PortRange{Lo: p.Lo, Hi: p.Hi})
	}
	return t
}
