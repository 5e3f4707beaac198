package vmbench

import (
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/policy"
)

// TestPolicyValid checks that the generated policies pass the agent's own
// validation with the rule counts Mix promises.
func TestPolicyValid(t *testing.T) {
	tree, err := MakeTree(t.TempDir(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 10, 1000} {
		b, err := tree.Policy(n, ModeEnforce, 3)
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.Parse("bench.toml", b)
		if err != nil {
			t.Fatalf("%d rules: %v", n, err)
		}
		files, execs, nets := split(n)
		if got := strings.Count(string(b), "[["); got != n {
			t.Errorf("%d rules: policy has %d tables", n, got)
		}
		kinds := map[policy.Kind]int{}
		for _, r := range policy.Compile(p).Rules {
			kinds[r.Kind]++
		}
		if p.Len() != n || kinds[policy.KindFile] != files+1 || kinds[policy.KindExec] != execs || kinds[policy.KindNetwork] != nets {
			t.Errorf("%d rules: %d in all, %v by kind; want %d file, %d exec, %d network",
				n, p.Len(), kinds, files+1, execs, nets)
		}
	}
	if _, err := tree.Policy(1001, ModeAudit, 1); err == nil {
		t.Error("a policy larger than the tree was made")
	}
}
