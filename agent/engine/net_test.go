package engine

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// TestResolveNetsFoldsCoveringPrefixes: every prefix entry holds the rules
// of all prefixes covering it, enforcing first, so the longest matching
// prefix alone sees them all; IPv4-mapped IPv6 prefixes become IPv4
// prefixes.
func TestResolveNetsFoldsCoveringPrefixes(t *testing.T) {
	p := netip.MustParsePrefix
	rs, err := Resolve(Spec{
		Rules: []RuleSpec{{ID: "all-smtp", Audit: true}, {ID: "ten"}, {ID: "host"}, {ID: "v6"}},
		Nets: []NetTarget{
			{Rule: 0, Prefix: p("0.0.0.0/0"), Protocol: 6, Ports: []PortRange{{25, 25}, {465, 466}}},
			{Rule: 1, Prefix: p("10.0.0.0/8")},
			{Rule: 2, Prefix: p("::ffff:10.1.2.3/128")},
			{Rule: 3, Prefix: p("fd00::/8")},
			{Rule: 1, Prefix: p("192.0.2.0/24")},
		},
	}, fakeFS{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix][]uint32{
		p("0.0.0.0/0"):    {1},
		p("10.0.0.0/8"):   {2, 1},
		p("10.1.2.3/32"):  {2, 3, 1},
		p("192.0.2.0/24"): {2, 1},
		p("fd00::/8"):     {4},
	}
	if len(rs.Nets) != len(want) {
		t.Fatalf("nets = %v", rs.Nets)
	}
	for k, refs := range want {
		ref, ok := rs.Nets[k]
		if !ok {
			t.Errorf("no entry for %s", k)
		}
		got := ref.Ref[:]
		if !slices.Equal(got[:len(refs)], refs) || slices.ContainsFunc(got[len(refs):], func(r uint32) bool { return r != 0 }) {
			t.Errorf("%v refs = %v, want %v", k, got, refs)
		}
	}
	v4, v6 := NetLengths(rs.Nets)
	if !slices.Equal(v4, []uint8{32, 24, 8, 0}) || !slices.Equal(v6, []uint8{8}) {
		t.Errorf("prefix lengths = %v, %v; want [32 24 8 0], [8]", v4, v6)
	}
	smtp := rs.NetRules[0]
	if smtp.Protocol != 6 || smtp.Nports != 2 || smtp.Ports[1] != (bpf.AegisPortRange{Lo: 465, Hi: 466}) {
		t.Errorf("net rule 0 = %+v", smtp)
	}
	if got := unneededPrograms(rs); slices.Contains(got, bpf.AegisProgAegisSocketConnect) || !slices.Contains(got, bpf.AegisProgAegisTaskKill) {
		t.Errorf("unneeded programs = %v", got)
	}
}

func TestResolveNetsTooManyCovering(t *testing.T) {
	spec := Spec{}
	for i := range MaxNetRefs + 1 {
		spec.Rules = append(spec.Rules, RuleSpec{ID: "r" + string(rune('a'+i))})
		spec.Nets = append(spec.Nets, NetTarget{Rule: uint32(i), Prefix: netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 8+i)})
	}
	_, err := Resolve(spec, fakeFS{})
	if err == nil || !strings.Contains(err.Error(), "covered by 9 network rules") {
		t.Fatalf("got %v", err)
	}
}

func TestResolveAgent(t *testing.T) {
	fs := fakeFS{"/sys/fs/cgroup/system.slice": dir(77)}
	spec := Spec{
		Rules:       []RuleSpec{{ID: "agent-audit", Audit: true}, {ID: "agent"}},
		Agent:       []AgentTarget{{Rule: 0, ExemptPIDs: []uint32{1}}, {Rule: 1, ExemptPIDs: []uint32{1, 42, 1}}},
		AgentCgroup: "/system.slice/aegisbpf.service",
	}
	rs, err := Resolve(spec, fs)
	if err != nil {
		t.Fatal(err)
	}
	g := rs.Agent
	if g.Ref != 2 || g.ParentCgroup != 77 || g.NameHash != NameHash("aegisbpf.service") || !slices.Equal(g.ExemptPIDs, []uint32{1, 42}) {
		t.Errorf("agent guard = %+v", g)
	}
	spec.AgentCgroup = "/"
	if _, err := Resolve(spec, fs); err == nil || !strings.Contains(err.Error(), "root cgroup") {
		t.Errorf("agent in the root cgroup: got %v", err)
	}
	if CgroupNameHash(strings.Repeat("x", 80)) != NameHash(strings.Repeat("x", 63)) {
		t.Error("cgroup names are hashed beyond 63 bytes")
	}
}
