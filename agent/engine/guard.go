package engine

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// Object kinds of the guarded map (enum aegis_obj_kind).
const (
	objMap  = 1
	objLink = 2
)

// unguarded reports the maps others may still open: the counters, read by
// `aegisbpf status` and metrics tools outside the agent and part of no
// decision (a writer can only falsify counts), and the frozen .rodata.
func unguarded(name string) bool {
	switch name {
	case bpf.AegisMapDecisions, bpf.AegisMapStats, bpf.AegisMapRuleCounters:
		return true
	}
	return strings.HasPrefix(name, ".")
}

// unneededPrograms lists the programs of rule kinds rs has none of. They
// are not loaded: they would cost load and attach time and a call on every
// connect, datagram or signal for nothing. The file, exec and protection
// hooks always run (they also hold unresolved-path and pin decisions).
func unneededPrograms(rs *RuleSet) []string {
	var out []string
	if len(rs.Nets) == 0 {
		out = append(out, bpf.AegisProgAegisSocketConnect, bpf.AegisProgAegisSocketSendmsg)
	}
	if rs.Agent == nil {
		out = append(out, bpf.AegisProgAegisTaskKill, bpf.AegisProgAegisFileSendSigiotask,
			bpf.AegisProgAegisBpfMap, bpf.AegisProgAegisBpf, bpf.AegisProgAegisSbUmount)
	}
	return out
}

// fillAgent writes the agent protection: who the agent is, which PIDs may
// still signal it, and where its pins live (the pin root, on bpffs).
func fillAgent(coll *ebpf.Collection, g *AgentGuard, root string) error {
	if g == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return fmt.Errorf("resolving the pin root %s: %w", root, err)
	}
	id := bpf.AegisAgentId{
		ParentCgroup: g.ParentCgroup,
		NameHash:     g.NameHash,
		PinRootIno:   st.Ino,
		PinRootDev:   bpf.KernelDev(st.Dev),
		Rule:         g.Ref,
	}
	one := uint32(1)
	for _, pid := range g.ExemptPIDs {
		if err := coll.Maps[bpf.AegisMapAgentExempt].Put(pid, one); err != nil {
			return fmt.Errorf("filling exempt PIDs: %w", err)
		}
	}
	if err := coll.Maps[bpf.AegisMapAgent].Put(uint32(0), id); err != nil {
		return fmt.Errorf("filling the agent protection: %w", err)
	}
	return nil
}

// guardObjects records the ids of the instance's maps (but the counters),
// the inner maps of its network rules and its links, which other processes
// may then not open with bpf().
func guardObjects(coll *ebpf.Collection, inner []*ebpf.Map, links map[string]link.Link) error {
	m := coll.Maps[bpf.AegisMapGuarded]
	one := uint32(1)
	maps := map[string]*ebpf.Map{}
	for name, cm := range coll.Maps {
		if !unguarded(name) {
			maps[name] = cm
		}
	}
	for i, im := range inner {
		maps[fmt.Sprintf("network rules %d", i)] = im
	}
	for name, cm := range maps {
		info, err := cm.Info()
		if err != nil {
			return fmt.Errorf("reading map %s: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return fmt.Errorf("kernel reports no id for map %s", name)
		}
		if err := m.Put(bpf.AegisObjKey{Kind: objMap, Id: uint32(id)}, one); err != nil {
			return fmt.Errorf("guarding map %s: %w", name, err)
		}
	}
	for name, l := range links {
		info, err := l.Info()
		if err != nil {
			return fmt.Errorf("reading link %s: %w", name, err)
		}
		if err := m.Put(bpf.AegisObjKey{Kind: objLink, Id: uint32(info.ID)}, one); err != nil {
			return fmt.Errorf("guarding link %s: %w", name, err)
		}
	}
	return nil
}
