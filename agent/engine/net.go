package engine

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// PortRange is a closed range of destination ports.
type PortRange struct{ Lo, Hi uint16 }

// NetTarget is one destination prefix a network rule denies.
type NetTarget struct {
	Rule     uint32 // index into Spec.Rules
	Prefix   netip.Prefix
	Protocol uint8       // IPPROTO_TCP, IPPROTO_UDP, 0 for any
	Ports    []PortRange // empty: every port
}

// MaxNetRefs bounds the network rules whose prefixes cover one prefix
// (AEGIS_NET_REFS): the kernel checks at most that many per decision.
const MaxNetRefs = len(bpf.AegisNetRef{}.Ref)

// maxPortRanges is AEGIS_MAX_PORT_RANGES.
const maxPortRanges = len(bpf.AegisNetRule{}.Ports)

// addNetRule records the protocol and ports of rule index i.
func (rs *RuleSet) addNetRule(t NetTarget) error {
	if len(t.Ports) > maxPortRanges {
		return fmt.Errorf("%d port ranges, the limit is %d", len(t.Ports), maxPortRanges)
	}
	r := bpf.AegisNetRule{Protocol: uint32(t.Protocol), Nports: uint32(len(t.Ports))}
	for i, p := range t.Ports {
		if p.Lo > p.Hi {
			return fmt.Errorf("port range %d-%d is reversed", p.Lo, p.Hi)
		}
		r.Ports[i] = bpf.AegisPortRange{Lo: p.Lo, Hi: p.Hi}
	}
	if old, ok := rs.NetRules[t.Rule]; ok && old != r {
		return fmt.Errorf("prefix %s has other ports or protocol than the rule's other prefixes", t.Prefix)
	}
	rs.NetRules[t.Rule] = r
	return nil
}

// canonicalPrefix masks p and turns an IPv4-mapped IPv6 prefix of length
// 96 or more into its IPv4 prefix, as the kernel decides such addresses.
func canonicalPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("prefix %s is not valid", p)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("prefix %s has a zone", p)
	}
	return p.Masked(), nil
}

// resolveNets builds the tries of targets. Each distinct prefix gets the
// refs of every rule whose prefix covers it, so the kernel's longest-prefix
// match finds all rules matching an address in one lookup.
func (rs *RuleSet) resolveNets(targets []NetTarget) error {
	direct := map[netip.Prefix][]uint32{}
	for _, t := range targets {
		if int(t.Rule) >= len(rs.Rules) {
			return fmt.Errorf("network target %s names rule %d of %d", t.Prefix, t.Rule, len(rs.Rules))
		}
		p, err := canonicalPrefix(t.Prefix)
		if err == nil {
			err = rs.addNetRule(t)
		}
		if err != nil {
			return fmt.Errorf("rule %s: %w", rs.Rules[t.Rule].ID, err)
		}
		ref := t.Rule + 1
		if !slices.Contains(direct[p], ref) {
			direct[p] = append(direct[p], ref)
		}
	}
	prefixes := make([]netip.Prefix, 0, len(direct))
	for p := range direct {
		prefixes = append(prefixes, p)
	}
	// By address, then shorter first: a prefix comes after every prefix
	// that covers it, and those are on the stack when it is reached.
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	type covered struct {
		p    netip.Prefix
		refs []uint32
	}
	var stack []covered
	for _, p := range prefixes {
		for len(stack) > 0 && !stack[len(stack)-1].p.Contains(p.Addr()) {
			stack = stack[:len(stack)-1]
		}
		var refs []uint32
		if len(stack) > 0 {
			refs = slices.Clone(stack[len(stack)-1].refs)
		}
		for _, r := range direct[p] {
			if !slices.Contains(refs, r) {
				refs = append(refs, r)
			}
		}
		if len(refs) > MaxNetRefs {
			return fmt.Errorf("prefix %s is covered by %d network rules, the limit is %d", p, len(refs), MaxNetRefs)
		}
		slices.SortFunc(refs, func(a, b uint32) int {
			if a == b {
				return 0
			}
			if rs.better(a, b) {
				return -1
			}
			return 1
		})
		stack = append(stack, covered{p, refs})
		rs.putNet(p, refs)
	}
	return nil
}

func (rs *RuleSet) putNet(p netip.Prefix, refs []uint32) {
	var v bpf.AegisNetRef
	copy(v.Ref[:], refs)
	if p.Addr().Is4() {
		rs.Net4[bpf.AegisNet4Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}] = v
		return
	}
	rs.Net6[bpf.AegisNet6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}] = v
}
