package policy

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// Compiled is the intermediate form the kernel engine loads: dense rule
// indexes, effective modes, and one entry per map key. Paths and cgroup
// paths are kept as written (normalized); the engine resolves them to
// (dev, inode) on the host at apply time, and matches cgroups by path.
//
// Every slice is sorted as documented on its field, so a Compiled is a
// deterministic function of the policy's meaning: reordering rules or
// targets in the TOML does not change it, nor its Digest.
type Compiled struct {
	Version int64  `json:"version"`
	Name    string `json:"name,omitempty"`
	Mode    Mode   `json:"mode"`
	Serial  uint64 `json:"serial"`
	// Digest is the hex sha256 of the canonical encoding of everything
	// else in Compiled (docs/POLICY.md, "Policy digest").
	Digest string `json:"digest"`
	// Rules is indexed by rule index: Rules[i].Index == i. Sorted by id.
	Rules []Rule `json:"rules"`
	// Files, Execs, Net4, Net6 and Protections are sorted by rule index,
	// then by target.
	Files       []FileEntry  `json:"files"`
	Execs       []ExecEntry  `json:"execs"`
	Net4        []NetEntry   `json:"net4"`
	Net6        []NetEntry   `json:"net6"`
	Protections []Protection `json:"protections"`
	// Cgroups is every distinct cgroup path that rules name, sorted.
	Cgroups []string `json:"cgroups"`
}

// Rule is the per-rule part of the compiled form.
type Rule struct {
	Index uint32 `json:"index"`
	ID    string `json:"id"`
	Kind  Kind   `json:"kind"`
	// Mode is the effective mode: the rule's own, else the policy's.
	Mode Mode `json:"mode"`
	// Cgroups, when not empty, limits the rule to processes in these
	// cgroups or below; ExemptCgroups excludes processes in those cgroups
	// or below. Both sorted.
	Cgroups       []string `json:"cgroups,omitempty"`
	ExemptCgroups []string `json:"exempt_cgroups,omitempty"`
}

// FileEntry denies open of a file: Path for MatchExact and MatchSubtree,
// Inode for MatchInode.
type FileEntry struct {
	Rule   uint32   `json:"rule"`
	Match  Match    `json:"match"`
	Path   string   `json:"path,omitempty"`
	Inode  InodeRef `json:"inode,omitzero"`
	Access Access   `json:"access"`
}

// ExecEntry denies exec of a file (MatchExact) or of anything below a
// directory (MatchSubtree).
type ExecEntry struct {
	Rule  uint32 `json:"rule"`
	Match Match  `json:"match"`
	Path  string `json:"path"`
}

// NetEntry denies connect and send to a prefix. Ports, sorted and
// disjoint, is empty to match every port.
type NetEntry struct {
	Rule     uint32       `json:"rule"`
	Prefix   netip.Prefix `json:"prefix"`
	Protocol Protocol     `json:"protocol"`
	Ports    []PortRange  `json:"ports,omitempty"`
}

// Protection is a protect rule. ExemptPIDs (sorted) applies to
// ProtectAgent only.
type Protection struct {
	Rule       uint32      `json:"rule"`
	Kind       ProtectKind `json:"kind"`
	ExemptPIDs []uint32    `json:"exempt_pids,omitempty"`
}

// IDs returns the id string table: IDs()[i] is the id of rule i.
func (c *Compiled) IDs() []string {
	ids := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		ids[i] = r.ID
	}
	return ids
}

// Enforces reports whether any rule's effective mode is enforce.
func (c *Compiled) Enforces() bool {
	for _, r := range c.Rules {
		if r.Mode == ModeEnforce {
			return true
		}
	}
	return false
}

// Compile turns a policy into its compiled form. It is pure and cannot
// fail: Parse has already checked everything Compile relies on.
func Compile(p *Policy) *Compiled {
	c := &Compiled{Version: p.version, Name: p.name, Mode: p.mode, Serial: p.serial}
	order := make([]ruleOrder, len(p.rules))
	var nFile, nExec, nNet, nProt, nCg, nPorts, nPIDs int
	for n := range p.rules {
		r := &p.rules[n]
		order[n] = ruleOrder{id: r.id, n: n}
		nFile += len(r.paths) + len(r.subtrees) + len(r.inodes)
		nCg += len(r.cgroups) + len(r.exempt)
		nNet += len(r.cidrs)
		nPorts += len(r.ports)
		nPIDs += len(r.pids)
		switch r.kind {
		case KindExec:
			nExec += len(r.paths) + len(r.subtrees)
		case KindProtect:
			nProt++
		}
	}
	sortByID(order)

	c.Rules = make([]Rule, len(order))
	c.Files = make([]FileEntry, 0, nFile-nExec)
	c.Execs = make([]ExecEntry, 0, nExec)
	nets := make([]NetEntry, 0, nNet)
	c.Protections = make([]Protection, 0, nProt)
	slab := slabs{strs: make([]string, 0, nCg), ports: make([]PortRange, 0, nPorts), pids: make([]uint32, 0, nPIDs)}

	for idx, o := range order {
		r := &p.rules[o.n]
		ri := uint32(idx)
		mode := r.mode
		if mode == 0 {
			mode = p.mode
		}
		c.Rules[idx] = Rule{Index: ri, ID: r.id, Kind: r.kind, Mode: mode,
			Cgroups: slab.sorted(r.cgroups), ExemptCgroups: slab.sorted(r.exempt)}
		switch r.kind {
		case KindFile:
			c.Files = appendFiles(c.Files, ri, r)
		case KindExec:
			c.Execs = appendExecs(c.Execs, ri, r)
		case KindNetwork:
			nets = appendNets(nets, ri, r, &slab)
		case KindProtect:
			c.Protections = append(c.Protections, Protection{Rule: ri, Kind: r.protect, ExemptPIDs: slab.pidList(r.pids)})
		}
	}
	c.Net4, c.Net6 = splitFamilies(nets)
	c.Cgroups = distinct(slab.strs)
	c.Digest = digest(c)
	return c
}

func appendFiles(out []FileEntry, ri uint32, r *rule) []FileEntry {
	start := len(out)
	for _, t := range r.paths {
		out = append(out, FileEntry{Rule: ri, Match: MatchExact, Path: t.s, Access: r.access})
	}
	for _, t := range r.subtrees {
		out = append(out, FileEntry{Rule: ri, Match: MatchSubtree, Path: t.s, Access: r.access})
	}
	for _, t := range r.inodes {
		out = append(out, FileEntry{Rule: ri, Match: MatchInode, Inode: t.ref, Access: r.access})
	}
	if len(out)-start > 1 {
		slices.SortFunc(out[start:], func(a, b FileEntry) int {
			return cmp.Or(cmp.Compare(a.Match, b.Match), strings.Compare(a.Path, b.Path),
				cmp.Compare(a.Inode.Major, b.Inode.Major), cmp.Compare(a.Inode.Minor, b.Inode.Minor),
				cmp.Compare(a.Inode.Ino, b.Inode.Ino))
		})
	}
	return out
}

func appendExecs(out []ExecEntry, ri uint32, r *rule) []ExecEntry {
	start := len(out)
	for _, t := range r.paths {
		out = append(out, ExecEntry{Rule: ri, Match: MatchExact, Path: t.s})
	}
	for _, t := range r.subtrees {
		out = append(out, ExecEntry{Rule: ri, Match: MatchSubtree, Path: t.s})
	}
	if len(out)-start > 1 {
		slices.SortFunc(out[start:], func(a, b ExecEntry) int {
			return cmp.Or(cmp.Compare(a.Match, b.Match), strings.Compare(a.Path, b.Path))
		})
	}
	return out
}

func appendNets(out []NetEntry, ri uint32, r *rule, slab *slabs) []NetEntry {
	start := len(out)
	ports := slab.portList(r.ports)
	for _, t := range r.cidrs {
		out = append(out, NetEntry{Rule: ri, Prefix: t.p, Protocol: r.proto, Ports: ports})
	}
	if len(out)-start > 1 {
		slices.SortFunc(out[start:], func(a, b NetEntry) int { return comparePrefix(a.Prefix, b.Prefix) })
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// splitFamilies splits entries by address family, keeping their order.
func splitFamilies(nets []NetEntry) (v4, v6 []NetEntry) {
	n4 := 0
	for _, e := range nets {
		if e.Prefix.Addr().Is4() {
			n4++
		}
	}
	v4 = make([]NetEntry, 0, n4)
	v6 = make([]NetEntry, 0, len(nets)-n4)
	for _, e := range nets {
		if e.Prefix.Addr().Is4() {
			v4 = append(v4, e)
		} else {
			v6 = append(v6, e)
		}
	}
	return v4, v6
}

// slabs hands out sub-slices of a few large allocations, so compiling
// many rules costs few allocations. Each sub-slice has its capacity
// clipped, so appending to one never overwrites another.
type slabs struct {
	strs  []string
	ports []PortRange
	pids  []uint32
}

func (s *slabs) sorted(ts []target) []string {
	if len(ts) == 0 {
		return nil
	}
	start := len(s.strs)
	for _, t := range ts {
		s.strs = append(s.strs, t.s)
	}
	out := s.strs[start:len(s.strs):len(s.strs)]
	slices.Sort(out)
	return out
}

func (s *slabs) portList(ps []PortRange) []PortRange {
	if len(ps) == 0 {
		return nil
	}
	start := len(s.ports)
	s.ports = append(s.ports, ps...)
	return s.ports[start:len(s.ports):len(s.ports)]
}

func (s *slabs) pidList(ps []pidTarget) []uint32 {
	if len(ps) == 0 {
		return nil
	}
	start := len(s.pids)
	for _, p := range ps {
		s.pids = append(s.pids, p.pid)
	}
	out := s.pids[start:len(s.pids):len(s.pids)]
	slices.Sort(out)
	return out
}

// distinct returns the sorted distinct values of strs, in a new slice.
func distinct(strs []string) []string {
	out := slices.Clone(strs)
	slices.Sort(out)
	return slices.Compact(out)
}
