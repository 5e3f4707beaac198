package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// DefaultRoot is where instances are pinned.
const DefaultRoot = "/sys/fs/bpf/aegisbpf"

// DefaultRingBufferSize is the event ring buffer size in bytes.
const DefaultRingBufferSize = 1 << 20

// DefaultMaxEntries is the capacity of each rule map: the largest policy
// the engine accepts (policy.MaxFileRules and friends stay below it).
const DefaultMaxEntries = 1 << 20

// Engine applies rule sets as pinned instances under Root.
type Engine struct {
	Root           string
	RingBufferSize uint32
	// MaxEntries caps every rule map; 0 means DefaultMaxEntries.
	MaxEntries int
	Log        *slog.Logger

	mu      sync.Mutex
	current *Instance // the instance this process applied last
}

// ErrCapacity is returned (wrapped) when a rule set does not fit.
var ErrCapacity = errors.New("policy exceeds map capacity")

// CheckCapacity reports every map rs would overfill.
func (e *Engine) CheckCapacity(rs *RuleSet) error {
	limit := e.MaxEntries
	if limit == 0 {
		limit = DefaultMaxEntries
	}
	var errs []error
	names := make([]string, 0)
	sizes := rs.Sizes()
	for p := range rs.Nets {
		sizes[netMapName(p)]++
	}
	for name := range sizes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if n := sizes[name]; n > limit {
			errs = append(errs, fmt.Errorf("%w: map %s needs %d entries, capacity is %d", ErrCapacity, name, n, limit))
		}
	}
	return errors.Join(errs...)
}

// Instance is one loaded, attached and pinned copy of the programs and maps.
type Instance struct {
	ID      string
	Dir     string
	Rules   *RuleSet
	Applied time.Time

	mu    sync.Mutex
	coll  *ebpf.Collection
	links map[string]link.Link
}

func (e *Engine) root() string {
	if e.Root == "" {
		return DefaultRoot
	}
	return e.Root
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// lock takes an exclusive flock on the pin root, so two agents never apply
// or release at once. The returned func unlocks.
func (e *Engine) lock() (func(), error) {
	if err := os.MkdirAll(e.root(), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", e.root(), err)
	}
	f, err := os.Open(e.root())
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", e.root(), err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Apply loads rs as a new instance, fills its maps, attaches and pins every
// program, and then releases every other instance. On any error before the
// new instance is fully attached, it is torn down and the running instances
// are untouched: the previous policy keeps enforcing.
func (e *Engine) Apply(rs *RuleSet) (*Instance, error) {
	if err := e.CheckCapacity(rs); err != nil {
		return nil, fmt.Errorf("refusing the policy, the running one stays: %w", err)
	}
	unlock, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()

	inst, err := e.load(rs)
	if err != nil {
		return nil, err
	}
	ids, err := e.list()
	if err != nil {
		return inst, fmt.Errorf("listing old instances: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if id == inst.ID {
			continue
		}
		if err := e.release(id); err != nil {
			errs = append(errs, err)
		}
	}
	// This process's descriptors of the previous instance are the last
	// references to its links: closing them detaches it.
	e.mu.Lock()
	prev := e.current
	e.current = inst
	e.mu.Unlock()
	if prev != nil {
		prev.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return inst, fmt.Errorf("releasing old instances (the new one enforces): %w", err)
	}
	return inst, nil
}

func (e *Engine) load(rs *RuleSet) (_ *Instance, err error) {
	spec, err := bpf.LoadAegis()
	if err != nil {
		return nil, fmt.Errorf("parsing embedded BPF objects: %w", err)
	}
	for name, n := range rs.Sizes() {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("embedded BPF objects lack map %s", name)
		}
		ms.MaxEntries = uint32(max(n, 1))
	}
	rb := e.RingBufferSize
	if rb == 0 {
		rb = DefaultRingBufferSize
	}
	spec.Maps[bpf.AegisMapEvents].MaxEntries = rb
	for _, name := range unneededPrograms(rs) {
		delete(spec.Programs, name)
	}
	v4, v6 := NetLengths(rs.Nets)
	spec.Maps[bpf.AegisMapGuarded].MaxEntries = uint32(len(spec.Maps) + len(v4) + len(v6) + len(spec.Programs))
	deny := uint32(0)
	if rs.DenyUnresolved {
		deny = 1
	}
	if err := spec.Variables[bpf.AegisVarCfgDenyUnresolved].Set(deny); err != nil {
		return nil, fmt.Errorf("setting cfg_deny_unresolved: %w", err)
	}
	if err := SetNetLengths(spec.Variables, rs.Nets); err != nil {
		return nil, err
	}
	t0 := time.Now()
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading BPF programs: %+v", ve)
		}
		return nil, fmt.Errorf("loading BPF programs: %w", err)
	}
	loadTook := time.Since(t0)
	e.log().Debug("programs loaded", "took", loadTook)
	inst := &Instance{
		ID:      fmt.Sprintf("%016x", time.Now().UnixNano()),
		Rules:   rs,
		Applied: time.Now(),
		coll:    coll,
		links:   map[string]link.Link{},
	}
	inst.Dir = filepath.Join(e.root(), inst.ID)
	defer func() {
		if err != nil {
			inst.Close()
			os.RemoveAll(inst.Dir)
		}
	}()
	tf := time.Now()
	if err := fill(coll, rs); err != nil {
		return nil, err
	}
	nets, err := FillNets(coll.Maps[bpf.AegisMapNet4Rules], coll.Maps[bpf.AegisMapNet6Rules],
		spec.Maps[bpf.AegisMapNet4Rules].InnerMap, spec.Maps[bpf.AegisMapNet6Rules].InnerMap, rs.Nets)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, m := range nets {
			m.Close() // the outer maps hold them
		}
	}()
	if err := fillAgent(coll, rs.Agent, e.root()); err != nil {
		return nil, err
	}
	fillTook := time.Since(tf)
	e.log().Debug("maps filled", "took", fillTook)
	for _, d := range []string{"links", "maps"} {
		if err := os.MkdirAll(filepath.Join(inst.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating pin directory: %w", err)
		}
	}
	for name, m := range coll.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata and friends: bpffs refuses dotted names, and nothing reads them
		}
		if err := m.Pin(filepath.Join(inst.Dir, "maps", name)); err != nil {
			return nil, fmt.Errorf("pinning map %s: %w", name, err)
		}
	}
	tattach := time.Now()
	names := make([]string, 0, len(coll.Programs))
	for name := range coll.Programs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ta := time.Now()
		l, err := link.AttachLSM(link.LSMOptions{Program: coll.Programs[name]})
		if err != nil {
			return nil, fmt.Errorf("attaching %s: %w", name, err)
		}
		e.log().Debug("attached", "program", name, "took", time.Since(ta))
		inst.links[name] = l
		if err := l.Pin(filepath.Join(inst.Dir, "links", name)); err != nil {
			return nil, fmt.Errorf("pinning link %s: %w", name, err)
		}
	}
	if rs.Agent != nil {
		if err := guardObjects(coll, nets, inst.links); err != nil {
			return nil, err
		}
	}
	e.log().Info("instance attached", "instance", inst.ID, "rules", rs.String(),
		"load", loadTook, "fill", fillTook, "attach", time.Since(tattach))
	return inst, nil
}

// fill writes rs into the collection's maps.
func fill(coll *ebpf.Collection, rs *RuleSet) error {
	for i, r := range rs.Rules {
		info := bpf.AegisRuleInfo{ScopeMode: uint32(r.Scope), ScopeId: r.ScopeID, ExemptId: r.ExemptID}
		if r.Audit {
			info.Flags |= 1
		}
		if err := coll.Maps[bpf.AegisMapRules].Put(uint32(i), info); err != nil {
			return fmt.Errorf("filling rules: %w", err)
		}
	}
	if err := putAll(coll.Maps[bpf.AegisMapInodeRules], rs.Inodes); err != nil {
		return fmt.Errorf("filling inode rules: %w", err)
	}
	if err := putAll(coll.Maps[bpf.AegisMapNameRules], rs.Names); err != nil {
		return fmt.Errorf("filling name rules: %w", err)
	}
	one := uint32(1)
	for k := range rs.Watched {
		if err := coll.Maps[bpf.AegisMapWatchedDirs].Put(k, one); err != nil {
			return fmt.Errorf("filling watched dirs: %w", err)
		}
	}
	for d := range rs.SubtreeDevs {
		if err := coll.Maps[bpf.AegisMapSubtreeDevs].Put(d, one); err != nil {
			return fmt.Errorf("filling subtree devices: %w", err)
		}
	}
	if err := putAll(coll.Maps[bpf.AegisMapPinnedDirs], rs.Pinned); err != nil {
		return fmt.Errorf("filling pinned dirs: %w", err)
	}
	for _, s := range rs.Scopes {
		if err := coll.Maps[bpf.AegisMapScopes].Put(s, one); err != nil {
			return fmt.Errorf("filling scopes: %w", err)
		}
	}
	for k, p := range rs.Protections {
		if err := coll.Maps[bpf.AegisMapProtections].Put(uint32(k), p); err != nil {
			return fmt.Errorf("filling protections: %w", err)
		}
	}
	return fillNet(coll, rs)
}

func fillNet(coll *ebpf.Collection, rs *RuleSet) error {
	for i, r := range rs.NetRules {
		if err := coll.Maps[bpf.AegisMapNetRules].Put(i, r); err != nil {
			return fmt.Errorf("filling ports and protocol of rule %d: %w", i, err)
		}
	}
	return nil
}

// putAll writes m in one batch where the kernel supports it.
func putAll[K comparable, V any](dst *ebpf.Map, m map[K]V) error {
	if len(m) == 0 {
		return nil
	}
	keys := make([]K, 0, len(m))
	vals := make([]V, 0, len(m))
	for k, v := range m {
		keys = append(keys, k)
		vals = append(vals, v)
	}
	return putSlices(dst, keys, vals)
}

// putSlices writes vals[i] under keys[i], in one batch where the kernel
// supports it.
func putSlices[K, V any](dst *ebpf.Map, keys []K, vals []V) error {
	n, err := dst.BatchUpdate(keys, vals, nil)
	if err == nil && n == len(keys) {
		return nil
	}
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range keys {
		if err := dst.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// List returns the ids of the pinned instances, oldest first.
func (e *Engine) List() ([]string, error) { return e.list() }

func (e *Engine) list() ([]string, error) {
	entries, err := os.ReadDir(e.root())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, en := range entries {
		if en.IsDir() {
			ids = append(ids, en.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Release detaches instance id: its link pins are removed (the kernel
// detaches a link when its last reference goes) and its maps unpinned.
func (e *Engine) Release(id string) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	// A process that applied this instance still holds its links open.
	e.mu.Lock()
	if e.current != nil && e.current.ID == id {
		e.current.Close()
		e.current = nil
	}
	e.mu.Unlock()
	ids, err := e.programIDs(id)
	if err != nil {
		return err
	}
	if err := e.release(id); err != nil {
		return err
	}
	return waitDetached(ids, 10*time.Second)
}

// programIDs returns the kernel ids of the programs behind instance id's
// pinned links.
func (e *Engine) programIDs(id string) ([]ebpf.ProgramID, error) {
	dir := filepath.Join(e.root(), id, "links")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []ebpf.ProgramID
	for _, en := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(dir, en.Name()), nil)
		if err != nil {
			return nil, fmt.Errorf("opening pinned link %s: %w", en.Name(), err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return nil, fmt.Errorf("reading link %s: %w", en.Name(), err)
		}
		ids = append(ids, info.Program)
	}
	return ids, nil
}

// waitDetached waits until no program in ids exists any more. The kernel
// may detach and free a link after its last reference goes; the program
// is gone only once nothing runs it, so a release is complete then.
func waitDetached(ids []ebpf.ProgramID, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break // gone
			}
			p.Close()
			if time.Now().After(deadline) {
				return fmt.Errorf("program %d is still loaded %s after release: another process holds it", id, timeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func (e *Engine) release(id string) error {
	if id == "" || strings.ContainsAny(id, "/.") {
		return fmt.Errorf("invalid instance id %q", id)
	}
	dir := filepath.Join(e.root(), id)
	var errs []error
	for _, sub := range []string{"links", "maps"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, en := range entries {
			if err := os.Remove(filepath.Join(dir, sub, en.Name())); err != nil {
				errs = append(errs, fmt.Errorf("unpinning %s/%s: %w", sub, en.Name(), err))
			}
		}
		os.Remove(filepath.Join(dir, sub))
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("releasing instance %s: %w", id, err)
	}
	e.log().Info("instance released", "instance", id)
	return nil
}

// Map returns the instance's map called name (see bpf.AegisMap*).
func (i *Instance) Map(name string) *ebpf.Map {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.coll == nil {
		return nil
	}
	return i.coll.Maps[name]
}

// Programs returns the names of the attached programs.
func (i *Instance) Programs() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	names := make([]string, 0, len(i.links))
	for n := range i.links {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Health reports whether every link of the instance is still pinned: a
// missing pin means someone or something released it, and this process's
// descriptors are all that keeps it attached.
func (i *Instance) Health() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.coll == nil {
		return errors.New("instance closed")
	}
	var errs []error
	for name := range i.links {
		p := filepath.Join(i.Dir, "links", name)
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("link %s is no longer pinned: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes this process's descriptors. The pins keep the programs
// attached and the maps alive: Close never stops enforcement.
func (i *Instance) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, l := range i.links {
		l.Close()
	}
	i.links = map[string]link.Link{}
	if i.coll != nil {
		i.coll.Close()
		i.coll = nil
	}
	return nil
}

// Program returns the instance's program called name.
func (i *Instance) Program(name string) *ebpf.Program {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.coll == nil {
		return nil
	}
	return i.coll.Programs[name]
}

// SumPerCPU reads key of a per-CPU map of uint64 counters (decisions,
// stats) and returns the sum over CPUs.
func SumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	var vals []uint64
	if err := m.Lookup(key, &vals); err != nil {
		return 0, err
	}
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum, nil
}
