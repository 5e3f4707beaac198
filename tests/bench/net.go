package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// NetBudget is the network decision budget at 10k CIDRs (issue 5), net of
// the empty program.
const NetBudget = 150 * time.Nanosecond

// Synthetic network rules: rule i denies the /24 at netBase + i*512, every
// protocol and port. Misses go to the /24 between two denied ones, so the
// lookup descends the trie as deep as a hit before it misses.
const (
	netBase     = 10 << 24
	missNetBase = netBase + 256
	netStep     = 512
)

// NetRow is the network decision cost at one CIDR count.
type NetRow struct {
	CIDRs int
	// Allow and Deny are the median cost per decision net of the empty
	// program: a destination in no rule (between two denied /24s), and one
	// in a denied /24, each visiting all CIDRs in a scattered order.
	Allow, Deny time.Duration
}

// netFixture is the benchmark object loaded with CIDRs synthetic rules.
type netFixture struct {
	coll  *ebpf.Collection
	cidrs int
}

func openNet(cidrs int) (*netFixture, error) {
	spec, err := bpf.LoadBench()
	if err != nil {
		return nil, fmt.Errorf("parsing the benchmark object: %w", err)
	}
	for name := range spec.Programs {
		if name != bpf.BenchProgBenchNet && name != bpf.BenchProgBenchEmpty {
			delete(spec.Programs, name)
		}
	}
	for _, name := range []string{bpf.BenchMapNet4Rules, bpf.BenchMapNetRules, bpf.BenchMapRules, bpf.BenchMapRuleCounters} {
		spec.Maps[name].MaxEntries = uint32(max(cidrs, 1))
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading the network benchmark: %w", err)
	}
	f := &netFixture{coll: coll, cidrs: cidrs}
	if err := f.fill(); err != nil {
		coll.Close()
		return nil, err
	}
	return f, nil
}

// fill writes the tries as the engine does for one /24 per rule.
func (f *netFixture) fill() error {
	keys := make([]bpf.BenchNet4Key, f.cidrs)
	refs := make([]bpf.BenchNetRef, f.cidrs)
	idx := make([]uint32, f.cidrs)
	infos := make([]bpf.BenchRuleInfo, f.cidrs)
	nets := make([]bpf.BenchNetRule, f.cidrs)
	for i := range f.cidrs {
		a := uint32(netBase + i*netStep)
		keys[i] = bpf.BenchNet4Key{Prefixlen: 24, Addr: [4]uint8{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}}
		refs[i].Ref[0] = uint32(i + 1)
		idx[i] = uint32(i)
	}
	for _, b := range []struct {
		name       string
		keys, vals any
	}{
		{bpf.BenchMapNet4Rules, keys, refs},
		{bpf.BenchMapRules, idx, infos},
		{bpf.BenchMapNetRules, idx, nets},
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
		row, err := measureNet(n, repeat, runs)
		if err != nil {
			return nil, fmt.Errorf("%d CIDRs: %w", n, err)
		}
		if progress != nil {
			progress(fmt.Sprintf("network decision, %d CIDRs: allow %s, deny %s", n, row.Allow, row.Deny))
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func measureNet(n, repeat, runs int) (NetRow, error) {
	f, err := openNet(n)
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
	return NetRow{CIDRs: n, Allow: max(allow-empty, 0), Deny: max(deny-empty, 0)}, nil
}
