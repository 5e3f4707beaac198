package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSortByID(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab.-_09z"
	for _, n := range []int{0, 1, 2, 47, 48, 49, 500, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			seen := map[string]bool{}
			var o []ruleOrder
			for len(o) < n {
				// Short ids over a small alphabet: many shared prefixes and
				// ids that are prefixes of others.
				b := make([]byte, 1+r.IntN(6))
				for i := range b {
					b[i] = alphabet[r.IntN(len(alphabet))]
				}
				if id := "p" + string(b); !seen[id] {
					seen[id] = true
					o = append(o, ruleOrder{id: id, n: len(o)})
				}
			}
			want := slices.Clone(o)
			slices.SortFunc(want, compareOrder)
			sortByID(o)
			if !slices.Equal(o, want) {
				t.Errorf("sortByID differs from a comparison sort")
			}
		})
	}
}
