package kernel

import (
	"sort"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/tests/testenv"
)

// The verifier's time is most of the agent's time to enforcement
// (docs/PERFORMANCE.md). While the cgroup scope walk's loops were unrolled,
// every program that can reach it cost the 6.1 verifier about 24,000
// instructions, 456,000 in all, and the collection took 5.5 s to load in the
// TCG VM; as bpf_loop steps, 1,500 to 6,600 each and 52,000 in all on 6.1,
// under 1.2 s. From 6.7 the verifier re-checks a bpf_loop callback until its
// states converge, so on 6.12 the file programs, whose walk is a callback,
// cost about 22,000-25,000 each and 229,000 in all. The bounds catch a
// return of unrolled loops on either kernel.
const (
	maxVerified      = 30000  // per program
	maxVerifiedTotal = 300000 // all programs
)

// TestVerifierCost loads every program of the agent and checks what the
// verifier processed against maxVerified and maxVerifiedTotal.
func TestVerifierCost(t *testing.T) {
	testenv.RequireBPFLSM(t)
	spec, err := bpf.LoadAegis()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	names := make([]string, 0, len(coll.Programs))
	for name := range coll.Programs {
		names = append(names, name)
	}
	sort.Strings(names)
	total := uint32(0)
	for _, name := range names {
		info, err := coll.Programs[name].Info()
		if err != nil {
			t.Fatal(err)
		}
		n, ok := info.VerifiedInstructions()
		if !ok {
			t.Fatalf("%s: the kernel does not report verified instructions", name)
		}
		total += n
		t.Logf("%-32s %6d instructions verified", name, n)
		if n > maxVerified {
			t.Errorf("%s: the verifier processed %d instructions, more than %d: an unrolled loop? (make it a bpf_loop step)", name, n, maxVerified)
		}
	}
	t.Logf("%d programs, %d instructions verified in all", len(names), total)
	if total > maxVerifiedTotal {
		t.Errorf("the verifier processed %d instructions for all programs, more than %d", total, maxVerifiedTotal)
	}
}
