package bench

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// ErrUnsupported is returned (wrapped, with the reason) when this host
// cannot run the benchmark: no socket filter programs, no
// BPF_PROG_TEST_RUN, or not enough privilege.
var ErrUnsupported = errors.New("host cannot run the decision benchmark")

// packet is the test run input: socket filters need at least an Ethernet
// header; the programs never read it.
var packet = make([]byte, 64)

// Synthetic rule layout. Rule i protects, for every access kind, the file
// inode fileBase+i, and by name the entry hashBase+i*hashStep in directory
// dirBase+i, all on device synthDev: what the engine's resolveFile writes
// for an exact path rule (inode_rules, name_rules, watched_dirs and rules;
// pinned_dirs is not read by file_open and stays empty). Names hash to
// synthetic values: the kernel hashes keys with jhash, so only their
// distinctness matters. Inodes at missBase and directories at missDirBase
// are in no rule.
const (
	synthDev    = 4095<<20 | 1
	fileBase    = 1 << 40
	missBase    = 2 << 40
	dirBase     = 3 << 40
	missDirBase = 4 << 40
	hashBase    = 0x9e3779b97f4a7c15
	hashStep    = 0xbf58476d1ce4e5b9 // odd: i*hashStep is distinct for every i
)

// Decision results as the programs return them (see result() in
// bench.bpf.c): action in bits 24-31, climb in bit 23, rule index + 1 below.
const (
	actionAllow = 0
	actionDeny  = 1
	climbBit    = 1 << 23
)

func denyResult(rule int) uint32 { return actionDeny<<24 | uint32(rule+1) }

// Fixture is one loaded copy of the benchmark programs, with maps holding
// Rules synthetic rules plus the rules of the real files under Dir. It is
// not safe for concurrent use: the programs share one input variable.
type Fixture struct {
	Rules int
	Dir   string // the real files bench_walk decides on
	FS    string // the file system type of Dir
	// WalkErr says why bench_walk could not be loaded (nil when it was);
	// the walk cases are then unavailable.
	WalkErr error

	objs    bpf.BenchObjects
	files   map[string]*os.File
	realDev uint32
	real    realRules
}

// Preflight checks that this host can load a socket filter program and
// run it with BPF_PROG_TEST_RUN. Errors wrap ErrUnsupported.
func Preflight() error {
	// Kernels since 5.11 charge BPF memory to the cgroup and need no
	// memlock limit; older ones fail below with EPERM, reported then.
	memlockErr := rlimit.RemoveMemlock()
	spec, err := bpf.LoadBench()
	if err != nil {
		return fmt.Errorf("parsing the benchmark object: %w", err)
	}
	prog, err := ebpf.NewProgram(spec.Programs[bpf.BenchProgBenchEmpty])
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: loading a socket filter program needs CAP_BPF and CAP_PERFMON (run as root): %v",
				ErrUnsupported, errors.Join(err, memlockErr))
		}
		if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: this kernel does not load socket filter programs: %v", ErrUnsupported, err)
		}
		return fmt.Errorf("loading %s: %w", bpf.BenchProgBenchEmpty, err)
	}
	defer prog.Close()
	if _, err := prog.Run(&ebpf.RunOptions{Data: packet}); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: this kernel lacks BPF_PROG_TEST_RUN for socket filters: %v", ErrUnsupported, err)
		}
		return fmt.Errorf("test-running %s: %w", bpf.BenchProgBenchEmpty, err)
	}
	return nil
}

// Open runs Preflight, loads the programs with maps sized as the engine
// sizes them for rules synthetic rules plus the real files it creates in
// a new directory under dir ("" for the default temporary directory), and
// fills them. Close releases everything and removes that directory.
func Open(rules int, dir string) (_ *Fixture, err error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	f := &Fixture{Rules: rules, files: map[string]*os.File{}}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.Dir, err = os.MkdirTemp(dir, "aegis-bench-"); err != nil {
		return nil, fmt.Errorf("creating the file tree: %w", err)
	}
	f.FS = fsType(f.Dir)
	if err := f.makeFiles(); err != nil {
		return nil, err
	}
	spec, err := bpf.LoadBench()
	if err != nil {
		return nil, fmt.Errorf("parsing the benchmark object: %w", err)
	}
	n := rules + len(f.real.rules)
	sizes := map[string]int{
		bpf.BenchMapInodeRules:   rules + len(f.real.inodes),
		bpf.BenchMapNameRules:    rules + len(f.real.names),
		bpf.BenchMapWatchedDirs:  rules + len(f.real.watched),
		bpf.BenchMapSubtreeDevs:  1,
		bpf.BenchMapRules:        n,
		bpf.BenchMapRuleCounters: n,
	}
	for name, size := range sizes {
		spec.Maps[name].MaxEntries = uint32(max(size, 1))
	}
	err = spec.LoadAndAssign(&f.objs, nil)
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && strings.Contains(fmt.Sprintf("%+v", ve), bpf.BenchProgBenchWalk) {
		// An older kernel may refuse bpf_get_current_task or
		// bpf_probe_read_kernel in socket filters: keep bench_decide.
		f.WalkErr = fmt.Errorf("loading %s: %v", bpf.BenchProgBenchWalk, lastLines(fmt.Sprintf("%+v", ve), 2))
		delete(spec.Programs, bpf.BenchProgBenchWalk)
		err = spec.LoadAndAssign(&f.objs, nil)
	}
	if err != nil {
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading the benchmark programs: %+v", ve)
		}
		return nil, fmt.Errorf("loading the benchmark programs: %w", err)
	}
	if err := f.fill(); err != nil {
		return nil, err
	}
	return f, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "; ")
}

// Close unloads the programs, frees the maps and removes the file tree.
func (f *Fixture) Close() error {
	for _, file := range f.files {
		file.Close()
	}
	err := f.objs.Close()
	if f.Dir != "" {
		err = errors.Join(err, os.RemoveAll(f.Dir))
	}
	return err
}

// fill writes the synthetic rules and the real files' rules the way the
// engine's fill() does: batched where the kernel supports it.
func (f *Fixture) fill() error {
	n := f.Rules
	infos := make([]bpf.BenchRuleInfo, n, n+len(f.real.rules))
	idx := make([]uint32, n, n+len(f.real.rules))
	inodeKeys := make([]bpf.BenchInodeKey, n, n+len(f.real.inodes))
	inodeVals := make([]bpf.BenchRuleRef, n, n+len(f.real.inodes))
	nameKeys := make([]bpf.BenchNameKey, n, n+len(f.real.names))
	nameVals := make([]bpf.BenchRuleRef, n, n+len(f.real.names))
	dirKeys := make([]bpf.BenchInodeKey, n, n+len(f.real.watched))
	ones := make([]uint32, n, n+len(f.real.watched))
	for i := range n {
		var ref bpf.BenchRuleRef
		for k := range ref.Self {
			ref.Self[k] = uint32(i + 1)
		}
		idx[i] = uint32(i)
		inodeKeys[i] = bpf.BenchInodeKey{Ino: fileBase + uint64(i), Dev: synthDev}
		inodeVals[i] = ref
		nameKeys[i] = bpf.BenchNameKey{ParentIno: dirBase + uint64(i), NameHash: hashBase + uint64(i)*hashStep, Dev: synthDev}
		nameVals[i] = ref
		dirKeys[i] = bpf.BenchInodeKey{Ino: dirBase + uint64(i), Dev: synthDev}
		ones[i] = 1
	}
	for i := range f.real.rules {
		idx = append(idx, uint32(n+i))
		infos = append(infos, bpf.BenchRuleInfo{})
	}
	for k, v := range f.real.inodes {
		inodeKeys = append(inodeKeys, k)
		inodeVals = append(inodeVals, v.shift(n))
	}
	for k, v := range f.real.names {
		nameKeys = append(nameKeys, k)
		nameVals = append(nameVals, v.shift(n))
	}
	for k := range f.real.watched {
		dirKeys = append(dirKeys, k)
		ones = append(ones, 1)
	}
	for _, b := range []struct {
		what       string
		m          *ebpf.Map
		keys, vals any
	}{
		{"rules", f.objs.Rules, idx, infos},
		{"inode rules", f.objs.InodeRules, inodeKeys, inodeVals},
		{"name rules", f.objs.NameRules, nameKeys, nameVals},
		{"watched dirs", f.objs.WatchedDirs, dirKeys, ones},
	} {
		if err := putAll(b.m, b.keys, b.vals); err != nil {
			return fmt.Errorf("filling %s: %w", b.what, err)
		}
	}
	return nil
}

// putAll writes keys and vals (slices of equal length) in one batch, or
// one by one where batches are not supported.
func putAll(m *ebpf.Map, keys, vals any) error {
	_, err := m.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		return putEach(m, keys, vals)
	}
	return err
}

func putEach(m *ebpf.Map, keys, vals any) error {
	switch k := keys.(type) {
	case []uint32:
		return putSlice(m, k, vals.([]bpf.BenchRuleInfo))
	case []bpf.BenchInodeKey:
		if v, ok := vals.([]uint32); ok {
			return putSlice(m, k, v)
		}
		return putSlice(m, k, vals.([]bpf.BenchRuleRef))
	case []bpf.BenchNameKey:
		return putSlice(m, k, vals.([]bpf.BenchRuleRef))
	}
	return fmt.Errorf("unexpected key type %T", keys)
}

func putSlice[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	for i := range keys {
		if err := m.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// setSubtrees adds or removes the real files' device from subtree_devs:
// with it, a decision that finds no rule on the object walks up to the
// file system root.
func (f *Fixture) setSubtrees(on bool) error {
	if !on {
		err := f.objs.SubtreeDevs.Delete(f.realDev)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return err
	}
	return f.objs.SubtreeDevs.Put(f.realDev, uint32(1))
}

// Result is one timed case.
type Result struct {
	PerRun time.Duration // the kernel's mean time per run, 1 ns resolution
	Ret    uint32        // the return value of the last run
}

// run times prog repeat times on in. reset is called when the kernel
// restarts an interrupted run (testing.B.ResetTimer, or nil).
func (f *Fixture) run(prog *ebpf.Program, in bpf.BenchBenchInput, repeat int, reset func()) (Result, error) {
	if err := f.objs.Input.Set(in); err != nil {
		return Result{}, fmt.Errorf("setting the input: %w", err)
	}
	if err := f.objs.Cursor.Set(uint32(0)); err != nil {
		return Result{}, fmt.Errorf("resetting the cursor: %w", err)
	}
	ret, per, err := prog.Benchmark(packet, repeat, reset)
	if err != nil {
		return Result{}, err
	}
	return Result{PerRun: per, Ret: ret}, nil
}
