package engine

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

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

// resolveNets builds the prefix table of targets. Each distinct prefix gets the
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
	rs.Nets[p] = v
}

// NetLengths returns the prefix lengths present in nets by family, longest
// first: the kernel probes the map of each length in that order.
func NetLengths(nets map[netip.Prefix]bpf.AegisNetRef) (v4, v6 []uint8) {
	for p := range nets {
		lens := &v6
		if p.Addr().Is4() {
			lens = &v4
		}
		if l := uint8(p.Bits()); !slices.Contains(*lens, l) {
			*lens = append(*lens, l)
		}
	}
	for _, lens := range [][]uint8{v4, v6} {
		slices.Sort(lens)
		slices.Reverse(lens)
	}
	return v4, v6
}

// netMapName names the map holding prefix p for capacity errors:
// net4_rules/24 is the map of IPv4 /24 prefixes.
func netMapName(p netip.Prefix) string {
	if p.Addr().Is4() {
		return fmt.Sprintf("%s/%d", bpf.AegisMapNet4Rules, p.Bits())
	}
	return fmt.Sprintf("%s/%d", bpf.AegisMapNet6Rules, p.Bits())
}

// Sizes of the cfg_net*_lens arrays (AEGIS_NET4_LENS, AEGIS_NET6_LENS).
const (
	net4Lens = 33
	net6Lens = 129
)

// SetNetLengths writes the prefix lengths of nets into the cfg_net*_lens
// constants of a BPF object that includes lib/net.h, before it is loaded.
func SetNetLengths(vars map[string]*ebpf.VariableSpec, nets map[netip.Prefix]bpf.AegisNetRef) error {
	v4, v6 := NetLengths(nets)
	var l4 [net4Lens]uint8
	var l6 [net6Lens]uint8
	copy(l4[:], v4)
	copy(l6[:], v6)
	for _, v := range []struct {
		name string
		val  any
	}{
		{"cfg_net4_lens", l4}, {"cfg_net4_nlens", uint32(len(v4))},
		{"cfg_net6_lens", l6}, {"cfg_net6_nlens", uint32(len(v6))},
	} {
		vs, ok := vars[v.name]
		if !ok {
			return fmt.Errorf("BPF object lacks %s", v.name)
		}
		if err := vs.Set(v.val); err != nil {
			return fmt.Errorf("setting %s: %w", v.name, err)
		}
	}
	return nil
}

// FillNets creates one hash map per prefix length of nets, from the inner
// map specs of the outer maps net4 and net6 (net4_rules, net6_rules),
// fills each with its prefixes and puts it at its length. It returns the
// inner maps, which the caller closes once it no longer needs their ids:
// the outer maps keep them alive.
func FillNets(net4, net6 *ebpf.Map, spec4, spec6 *ebpf.MapSpec, nets map[netip.Prefix]bpf.AegisNetRef) (inner []*ebpf.Map, err error) {
	by4 := map[int]*netGroup[[4]byte]{}
	by6 := map[int]*netGroup[[16]byte]{}
	for p, ref := range nets {
		if p.Addr().Is4() {
			by4[p.Bits()] = by4[p.Bits()].add(p.Addr().As4(), ref)
		} else {
			by6[p.Bits()] = by6[p.Bits()].add(p.Addr().As16(), ref)
		}
	}
	defer func() {
		if err != nil {
			for _, m := range inner {
				m.Close()
			}
			inner = nil
		}
	}()
	for l, g := range by4 {
		m, err := g.create(net4, spec4, 4, l)
		if m != nil {
			inner = append(inner, m)
		}
		if err != nil {
			return inner, err
		}
	}
	for l, g := range by6 {
		m, err := g.create(net6, spec6, 6, l)
		if m != nil {
			inner = append(inner, m)
		}
		if err != nil {
			return inner, err
		}
	}
	return inner, nil
}

// netGroup is the prefixes of one family and length.
type netGroup[K any] struct {
	keys []K // masked addresses
	vals []bpf.AegisNetRef
}

func (g *netGroup[K]) add(k K, v bpf.AegisNetRef) *netGroup[K] {
	if g == nil {
		g = &netGroup[K]{}
	}
	g.keys = append(g.keys, k)
	g.vals = append(g.vals, v)
	return g
}

// create makes the map of g from spec, fills it and puts it in outer at
// index bits. The map is returned, once created, even with an error.
func (g *netGroup[K]) create(outer *ebpf.Map, spec *ebpf.MapSpec, family, bits int) (*ebpf.Map, error) {
	spec = spec.Copy()
	spec.Name = fmt.Sprintf("net%d_len%d", family, bits)
	spec.MaxEntries = uint32(len(g.keys))
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("creating the map of IPv%d /%d prefixes: %w", family, bits, err)
	}
	if err := putSlices(m, g.keys, g.vals); err != nil {
		return m, fmt.Errorf("filling the map of IPv%d /%d prefixes: %w", family, bits, err)
	}
	if err := outer.Put(uint32(bits), m); err != nil {
		return m, fmt.Errorf("adding the map of IPv%d /%d prefixes: %w", family, bits, err)
	}
	return m, nil
}
