package engine

import (
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/policy"
)

func TestResolveProtections(t *testing.T) {
	spec := Spec{
		Rules: []RuleSpec{{ID: "a", Audit: true}, {ID: "b"}, {ID: "c"}},
		Protections: []ProtectTarget{
			{Rule: 0, Kind: ProtectPtrace},
			{Rule: 2, Kind: ProtectPtrace},
			{Rule: 1, Kind: ProtectPtrace},
			{Rule: 1, Kind: ProtectPtrace}, // twice: kept once
			{Rule: 0, Kind: ProtectModuleLoad},
		},
	}
	rs, err := Resolve(spec, fakeFS{})
	if err != nil {
		t.Fatal(err)
	}
	// Enforcing rules first (by index), then auditing ones.
	if got, want := rs.Protections[ProtectPtrace], (bpf.AegisProtectRef{Ref: [8]uint32{2, 3, 1}}); got != want {
		t.Errorf("ptrace refs = %v, want %v", got, want)
	}
	if got, want := rs.Protections[ProtectModuleLoad], (bpf.AegisProtectRef{Ref: [8]uint32{1}}); got != want {
		t.Errorf("module refs = %v, want %v", got, want)
	}
}

func TestResolveProtectionErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		spec Spec
		want string
	}{
		"bad rule":  {Spec{Rules: []RuleSpec{{ID: "a"}}, Protections: []ProtectTarget{{Rule: 1, Kind: ProtectPtrace}}}, "names rule 1 of 1"},
		"bad kind":  {Spec{Rules: []RuleSpec{{ID: "a"}}, Protections: []ProtectTarget{{Rule: 0, Kind: 3}}}, "unknown protection 3"},
		"too many":  {manyPtrace(MaxProtectRules + 1), "more than 8 rules"},
		"just fits": {manyPtrace(MaxProtectRules), ""},
	} {
		_, err := Resolve(tc.spec, fakeFS{})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func manyPtrace(n int) Spec {
	var s Spec
	for i := range n {
		s.Rules = append(s.Rules, RuleSpec{ID: "r"})
		s.Protections = append(s.Protections, ProtectTarget{Rule: uint32(i), Kind: ProtectPtrace})
	}
	return s
}

func TestFromPolicyProtections(t *testing.T) {
	src := []byte(`version = 1
name = "p"
mode = "enforce"
serial = 1

[[protect]]
id = "no-ptrace"
kind = "ptrace"

[[protect]]
id = "no-modules"
kind = "module_load"
`)
	p, err := policy.Parse("p.toml", src)
	if err != nil {
		t.Fatal(err)
	}
	c := policy.Compile(p)
	spec, unsupported := FromPolicy(c)
	if len(unsupported) != 0 {
		t.Errorf("unsupported = %v, want none", unsupported)
	}
	want := map[Protect]string{ProtectPtrace: "no-ptrace", ProtectModuleLoad: "no-modules"}
	if len(spec.Protections) != 2 {
		t.Fatalf("protections = %v, want 2", spec.Protections)
	}
	for _, pt := range spec.Protections {
		if spec.Rules[pt.Rule].ID != want[pt.Kind] {
			t.Errorf("protection %d held by %s, want %s", pt.Kind, spec.Rules[pt.Rule].ID, want[pt.Kind])
		}
	}
}
