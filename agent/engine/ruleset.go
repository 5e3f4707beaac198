package engine

import (
	"fmt"
	"net/netip"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// Access is a set of access kinds a file rule denies.
type Access uint8

// Access kinds, matching enum aegis_access in bpf/abi.h.
const (
	AccessRead Access = 1 << iota
	AccessWrite
	AccessExec
)

func (a Access) kinds() []int {
	var k []int
	for i := 0; i < 3; i++ {
		if a&(1<<i) != 0 {
			k = append(k, i)
		}
	}
	return k
}

// ScopeMode says where a rule applies: bits of enum aegis_scope_mode.
type ScopeMode uint32

// Scope modes.
const (
	ScopeAll    ScopeMode = 0
	ScopeOnly   ScopeMode = 1
	ScopeExcept ScopeMode = 2
)

// Rule is one compiled rule as the kernel sees it.
type Rule struct {
	ID       string
	Audit    bool
	Scope    ScopeMode
	ScopeID  uint32 // scope of ScopeOnly cgroups
	ExemptID uint32 // scope of ScopeExcept cgroups
}

// RuleSet is everything one instance's maps hold. Build it with Resolve;
// it is immutable once built.
type RuleSet struct {
	Rules       []Rule
	Inodes      map[bpf.AegisInodeKey]bpf.AegisRuleRef
	Names       map[bpf.AegisNameKey]bpf.AegisRuleRef
	Watched     map[bpf.AegisInodeKey]struct{}
	SubtreeDevs map[uint32]struct{}
	Pinned      map[bpf.AegisInodeKey]uint32
	Scopes      []bpf.AegisScopeKey
	// Protections holds, by protection kind, the rule refs (index + 1)
	// holding it, enforcing rules first.
	Protections map[Protect]bpf.AegisProtectRef
	// Nets holds every distinct destination prefix (masked, IPv4 as IPv4)
	// with the refs of all rules covering it (see resolveNets); NetRules
	// holds the protocol and ports of network rules by rule index.
	Nets     map[netip.Prefix]bpf.AegisNetRef
	NetRules map[uint32]bpf.AegisNetRule
	// Agent is the agent protection, nil when the policy has none.
	Agent *AgentGuard
	// DenyUnresolved makes an object whose ancestry cannot be walked within
	// the bound a denial (enforce mode) instead of an allow (audit mode).
	DenyUnresolved bool
	// Warnings lists rule targets that could only be partly resolved.
	Warnings []string
}

func newRuleSet() *RuleSet {
	return &RuleSet{
		Inodes:      map[bpf.AegisInodeKey]bpf.AegisRuleRef{},
		Names:       map[bpf.AegisNameKey]bpf.AegisRuleRef{},
		Watched:     map[bpf.AegisInodeKey]struct{}{},
		SubtreeDevs: map[uint32]struct{}{},
		Pinned:      map[bpf.AegisInodeKey]uint32{},
		Protections: map[Protect]bpf.AegisProtectRef{},
		Nets:        map[netip.Prefix]bpf.AegisNetRef{},
		NetRules:    map[uint32]bpf.AegisNetRule{},
	}
}

// better reports whether rule ref a should win a slot over ref b: an
// enforcing rule beats an auditing one, then the lower index wins.
func (rs *RuleSet) better(a, b uint32) bool {
	if b == 0 {
		return true
	}
	aa, ab := rs.Rules[a-1].Audit, rs.Rules[b-1].Audit
	if aa != ab {
		return !aa
	}
	return a < b
}

func (rs *RuleSet) claim(slot *uint32, ref uint32) {
	if rs.better(ref, *slot) {
		*slot = ref
	}
}

// merge claims the slots of r that access, self and below select.
func (rs *RuleSet) merge(r *bpf.AegisRuleRef, ref uint32, access Access, self, below bool) {
	for _, k := range access.kinds() {
		if self {
			rs.claim(&r.Self[k], ref)
		}
		if below {
			rs.claim(&r.Below[k], ref)
		}
	}
}

func (rs *RuleSet) addInode(key bpf.AegisInodeKey, ref uint32, access Access, self, below bool) {
	r := rs.Inodes[key]
	rs.merge(&r, ref, access, self, below)
	rs.Inodes[key] = r
}

func (rs *RuleSet) addName(key bpf.AegisNameKey, ref uint32, access Access, self, below bool) {
	r := rs.Names[key]
	rs.merge(&r, ref, access, self, below)
	rs.Names[key] = r
	rs.Watched[bpf.AegisInodeKey{Ino: key.ParentIno, Dev: key.Dev}] = struct{}{}
}

func (rs *RuleSet) pin(key bpf.AegisInodeKey, ref uint32) {
	cur := rs.Pinned[key]
	rs.claim(&cur, ref)
	rs.Pinned[key] = cur
}

// Sizes returns the number of entries each map needs.
func (rs *RuleSet) Sizes() map[string]int {
	return map[string]int{
		bpf.AegisMapInodeRules:   len(rs.Inodes),
		bpf.AegisMapNameRules:    len(rs.Names),
		bpf.AegisMapWatchedDirs:  len(rs.Watched),
		bpf.AegisMapSubtreeDevs:  len(rs.SubtreeDevs),
		bpf.AegisMapPinnedDirs:   len(rs.Pinned),
		bpf.AegisMapRules:        len(rs.Rules),
		bpf.AegisMapRuleCounters: len(rs.Rules),
		bpf.AegisMapScopes:       len(rs.Scopes),
		bpf.AegisMapNetRules:     len(rs.Rules),
		bpf.AegisMapAgentExempt:  rs.exemptCount(),
	}
}

func (rs *RuleSet) exemptCount() int {
	if rs.Agent == nil {
		return 0
	}
	return len(rs.Agent.ExemptPIDs)
}

// RuleIDs returns the rule ids indexed by rule index.
func (rs *RuleSet) RuleIDs() []string {
	ids := make([]string, len(rs.Rules))
	for i, r := range rs.Rules {
		ids[i] = r.ID
	}
	return ids
}

func (rs *RuleSet) String() string {
	agent := "off"
	if rs.Agent != nil {
		agent = rs.Agent.Cgroup
	}
	return fmt.Sprintf("%d rules, %d inodes, %d names, %d watched dirs, %d pinned dirs, %d scope entries, %d protections, %d network prefixes, agent protection %s",
		len(rs.Rules), len(rs.Inodes), len(rs.Names), len(rs.Watched), len(rs.Pinned), len(rs.Scopes), len(rs.Protections),
		len(rs.Nets), agent)
}
