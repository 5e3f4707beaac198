package policy

import (
	"slices"
	"strings"
)

// ruleOrder pairs a rule's id with its position in the policy, so rules
// can be sorted by id without chasing pointers into them.
type ruleOrder struct {
	id string
	n  int
}

// radixCutoff is the bucket size below which a comparison sort is faster.
const radixCutoff = 48

// sortByID sorts o by id. A large policy has 10^5 short ids, which an MSD
// radix sort on their bytes orders several times faster than a comparison
// sort; the result is the same (bytewise order, as strings.Compare).
func sortByID(o []ruleOrder) {
	if len(o) <= radixCutoff {
		slices.SortFunc(o, compareOrder)
		return
	}
	radixSort(o, make([]ruleOrder, len(o)), 0)
}

func compareOrder(a, b ruleOrder) int { return strings.Compare(a.id, b.id) }

// radixSort sorts o, whose ids share their first depth bytes, using tmp
// (as long as o) as scratch space.
func radixSort(o, tmp []ruleOrder, depth int) {
	if len(o) <= radixCutoff {
		slices.SortFunc(o, compareOrder)
		return
	}
	// Bucket 0 holds ids that end at depth: a prefix sorts first.
	var count [257]int
	for _, r := range o {
		count[byteAt(r.id, depth)]++
	}
	var next [257]int
	sum := 0
	for b, c := range count {
		next[b] = sum
		sum += c
	}
	for _, r := range o {
		b := byteAt(r.id, depth)
		tmp[next[b]] = r
		next[b]++
	}
	copy(o, tmp)
	start := count[0] // ids ending here are equal; ids are unique, so at most one
	for b := 1; b < len(count); b++ {
		if c := count[b]; c > 1 {
			radixSort(o[start:start+c], tmp[start:start+c], depth+1)
		}
		start += count[b]
	}
}

func byteAt(s string, i int) int {
	if i < len(s) {
		return int(s[i]) + 1
	}
	return 0
}
