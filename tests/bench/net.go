package bench

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/bpf"
)

// NetBudget is the network decision budget at 10k CIDRs (issue 5), net of
// the empty program.
const NetBudget = 150 * time.Nanosecond

// Synthetic network rules: rule i denies the /24 at netBase + i*512, every
// protocol and port. Misses go to the /24 between two denied ones.
const (
	netBase     = 10 << 24
	missNetBase = netBase + 256
	netStep     = 512
)

// decoyLengths are the prefix lengths beside /24 of the many-lengths
// shape, in the order they are added: one decoy prefix of each, outside
// the probed addresses, makes the kernel probe that length on every
// decision (six of them before it reaches /24).
var decoyLengths = []uint8{32, 30, 28, 27, 26, 25, 16}

// NetLengthCounts are the shapes measured: prefix lengths in the policy.
var NetLengthCounts = []int{1, 1 + len(decoyLengths)}

// NetRow is the network decision cost at one CIDR count and number of
// prefix lengths.
type NetRow struct {
	CIDRs   int
	Lengths int
	// Allow and Deny are the median cost per decision net of the empty
	// program: a destination in no rule (between two denied /24s), and one
	// in a denied /24, each visiting all CIDRs in a scattered order.
	Allow, Deny time.Duration
}

// netFixture is the benchmark object loaded with CIDRs synthetic rules.
type netFixture struct {
	coll    *ebpf.Collection
	cidrs   int
	lengths int
}

func openNet(cidrs, lengths int) (*netFixture, error) {
	spec, err := bpf.LoadBench()
	if err != nil {
		return nil, fmt.Errorf("parsing the benchmark object: %w", err)
	}
	for name := range spec.Programs {
		if name != bpf.BenchProgBenchNet && name != bpf.BenchProgBenchEmpty {
			delete(spec.Programs, name)
		}
	}
	for _, name := range []string{bpf.BenchMapNetRules, bpf.BenchMapRules, bpf.BenchMapRuleCounters} {
		spec.Maps[name].MaxEntries = uint32(max(cidrs, 1))
	}
	nets := netPrefixes(cidrs, lengths)
	if err := engine.SetNetLengths(spec.Variables, nets); err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading the network benchmark: %w", err)
	}
	f := &netFixture{coll: coll, cidrs: cidrs, lengths: lengths}
	inner, err := engine.FillNets(coll.Maps[bpf.BenchMapNet4Rules], coll.Maps[bpf.BenchMapNet6Rules],
		spec.Maps[bpf.BenchMapNet4Rules].InnerMap, spec.Maps[bpf.BenchMapNet6Rules].InnerMap, nets)
	for _, m := range inner {
		m.Close() // the outer map holds them
	}
	if err == nil {
		err = f.fill()
	}
	if err != nil {
		coll.Close()
		return nil, err
	}
	return f, nil
}

// netPrefixes returns the prefix table the engine would write for one /24
// per rule, rule i at netBase + i*netStep, and one decoy prefix of each of
// the first lengths-1 decoy lengths, naming rule 0, outside 10.0.0.0/8.
func netPrefixes(cidrs, lengths int) map[netip.Prefix]bpf.AegisNetRef {
	nets := map[netip.Prefix]bpf.AegisNetRef{}
	for i := range cidrs {
		a := uint32(netBase + i*netStep)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 24)
		nets[p] = bpf.AegisNetRef{Ref: [8]uint32{uint32(i + 1)}}
	}
	for _, l := range decoyLengths[:lengths-1] {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, l, 0}), int(l)).Masked()
		nets[p] = bpf.AegisNetRef{Ref: [8]uint32{1}}
	}
	return nets
}

// fill writes the rules (unscoped, enforcing, every protocol and port).
func (f *netFixture) fill() error {
	idx := make([]uint32, f.cidrs)
	infos := make([]bpf.BenchRuleInfo, f.cidrs)
	rules := make([]bpf.BenchNetRule, f.cidrs)
	for i := range f.cidrs {
		idx[i] = uint32(i)
	}
	for _, b := range []struct {
		name       string
		keys, vals any
	}{
		{bpf.BenchMapRules, idx, infos},
		{bpf.BenchMapNetRules, idx, rules},
	} {
		if _, err := f.coll.Maps[b.name].BatchUpdate(b.keys, b.vals, nil); err != nil {
			return fmt.Errorf("filling %s: %w", b.name, err)
		}
	}
	return nil
}

func (f *netFixture) Close() { f.coll.Close() }

// time runs bench_net runs times of repeat decisions on the destinations
// from base and returns the median per decision and the last result.
func (f *netFixture) time(prog *ebpf.Program, base uint32, repeat, runs int) (time.Duration, uint32, error) {
	in := bpf.BenchBenchNetInput{Base: base + 1, Step: netStep, Count: uint32(f.cidrs), Stride: uint32(stride(f.cidrs)), Protocol: 6, Port: 443}
	if err := f.coll.Variables[bpf.BenchVarNetInput].Set(in); err != nil {
		return 0, 0, fmt.Errorf("setting the input: %w", err)
	}
	var per []time.Duration
	var ret uint32
	for range runs {
		r, d, err := prog.Benchmark(packet, repeat, nil)
		if err != nil {
			return 0, 0, err
		}
		per = append(per, d)
		ret = r
	}
	slices.Sort(per)
	return per[len(per)/2], ret, nil
}

// MeasureNet times the network decision at each CIDR count.
func MeasureNet(ctx context.Context, counts []int, repeat, runs int, progress func(string)) ([]NetRow, error) {
	var rows []NetRow
	for _, n := range counts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, l := range NetLengthCounts {
			row, err := measureNet(n, l, repeat, runs)
			if err != nil {
				return nil, fmt.Errorf("%d CIDRs, %d prefix lengths: %w", n, l, err)
			}
			if progress != nil {
				progress(fmt.Sprintf("network decision, %d CIDRs, %d prefix lengths: allow %s, deny %s", n, l, row.Allow, row.Deny))
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func measureNet(n, lengths, repeat, runs int) (NetRow, error) {
	f, err := openNet(n, lengths)
	if err != nil {
		return NetRow{}, err
	}
	defer f.Close()
	empty, _, err := f.time(f.coll.Programs[bpf.BenchProgBenchEmpty], 0, repeat, runs)
	if err != nil {
		return NetRow{}, err
	}
	prog := f.coll.Programs[bpf.BenchProgBenchNet]
	allow, ret, err := f.time(prog, missNetBase, repeat, runs)
	if err != nil {
		return NetRow{}, err
	}
	if ret != actionAllow<<24 {
		return NetRow{}, fmt.Errorf("a destination in no rule decided %#x, want allow", ret)
	}
	deny, ret, err := f.time(prog, netBase, repeat, runs)
	if err != nil {
		return NetRow{}, err
	}
	if ret>>24 != actionDeny {
		return NetRow{}, fmt.Errorf("a destination in a denied /24 decided %#x, want deny", ret)
	}
	return NetRow{CIDRs: n, Lengths: lengths, Allow: max(allow-empty, 0), Deny: max(deny-empty, 0)}, nil
}
