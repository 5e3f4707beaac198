package bench

import (
	"errors"
	"fmt"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// Keys says which objects a timed case decides on.
type Keys string

const (
	// OneKey decides on the same object every run: hot caches.
	OneKey Keys = "one"
	// AllKeys decides on each of the Rules objects of its kind in turn, in
	// a scattered order: at 100k rules and up, map entries come from
	// beyond the CPU caches.
	AllKeys Keys = "all"
)

// Case is one decision bench_decide times.
type Case struct {
	Name string
	// input returns the input for rule index 0 and the per-index steps.
	input func() bpf.BenchBenchInput
	// want returns the decision expected for rule index i.
	want func(i int) uint32
}

// DecideCases are the level-0 decisions: allow (no rule on the inode, the
// parent not watched), allow with the parent watched (the name looked up
// and missed), deny by inode, and deny by name (the inode in no rule).
func DecideCases() []Case {
	allow := func(int) uint32 { return actionAllow }
	return []Case{
		{"allow", func() bpf.BenchBenchInput {
			return bpf.BenchBenchInput{Ino: missBase, ParentIno: missDirBase, InoStep: 1, ParentStep: 1}
		}, allow},
		{"allow-watched", func() bpf.BenchBenchInput {
			return bpf.BenchBenchInput{Ino: missBase, ParentIno: dirBase, NameHash: hashBase + 1, InoStep: 1, ParentStep: 1, HashStep: hashStep}
		}, allow},
		{"deny-inode", func() bpf.BenchBenchInput {
			return bpf.BenchBenchInput{Ino: fileBase, ParentIno: dirBase, NameHash: hashBase, InoStep: 1, ParentStep: 1, HashStep: hashStep}
		}, denyResult},
		{"deny-name", func() bpf.BenchBenchInput {
			return bpf.BenchBenchInput{Ino: missBase, ParentIno: dirBase, NameHash: hashBase, InoStep: 1, ParentStep: 1, HashStep: hashStep}
		}, denyResult},
	}
}

// stride returns a step coprime with n near n/φ, so that index k*stride
// mod n visits every index once, far from the last one.
func stride(n int) int {
	if n <= 2 {
		return 1 % n
	}
	s := int(float64(n) * 0.6180339887)
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// inputFor returns c's input with keys: OneKey picks the middle rule.
func (f *Fixture) inputFor(c Case, keys Keys) (bpf.BenchBenchInput, int) {
	in := c.input()
	in.Dev = synthDev
	in.Access = 0 // read, as file_open for O_RDONLY
	if keys == OneKey || f.Rules == 0 {
		i := uint64(f.Rules / 2)
		in.Ino += i * in.InoStep
		in.ParentIno += i * in.ParentStep
		in.NameHash += i * in.HashStep
		in.Count = 1
		return in, int(i)
	}
	in.Count = uint32(f.Rules)
	in.Stride = uint32(stride(f.Rules))
	return in, -1
}

// Check runs every case once and compares the decision with the expected
// one, so a timing is never of a wrong decision.
func (f *Fixture) Check() error {
	var errs []error
	for _, c := range DecideCases() {
		if f.Rules == 0 && c.Name != "allow" {
			continue
		}
		for _, keys := range []Keys{OneKey, AllKeys} {
			in, idx := f.inputFor(c, keys)
			repeat := 1
			if idx < 0 {
				// The last of repeat runs decides on index (repeat-1)*stride.
				repeat = min(f.Rules, 3)
				idx = (repeat - 1) * int(in.Stride) % f.Rules
			}
			res, err := f.run(f.objs.BenchDecide, in, repeat, nil)
			if err != nil {
				return err
			}
			if want := c.want(idx); res.Ret != want {
				errs = append(errs, fmt.Errorf("%s, %s keys, rule %d: got %#x, want %#x", c.Name, keys, idx, res.Ret, want))
			}
		}
	}
	for _, w := range WalkCases() {
		if f.WalkErr != nil {
			break
		}
		res, err := f.Walk(w, 1, nil)
		if err != nil {
			return err
		}
		if want := w.want(f.Rules); res.Ret != want {
			errs = append(errs, fmt.Errorf("walk %s: got %#x, want %#x", w.Name, res.Ret, want))
		}
	}
	return errors.Join(errs...)
}

// Empty times the empty program: the cost of a test run itself.
func (f *Fixture) Empty(repeat int, reset func()) (Result, error) {
	return f.run(f.objs.BenchEmpty, bpf.BenchBenchInput{}, repeat, reset)
}

// Decide times case c with keys.
func (f *Fixture) Decide(c Case, keys Keys, repeat int, reset func()) (Result, error) {
	in, _ := f.inputFor(c, keys)
	return f.run(f.objs.BenchDecide, in, repeat, reset)
}

// WalkCase is one decision bench_walk times on a real file.
type WalkCase struct {
	Name     string
	File     string // relative to Fixture.Dir
	Subtrees bool   // the file's device holds a subtree rule: walks climb
	want     func(rules int) uint32
}

// WalkCases are the file_open decisions on real files.
func WalkCases() []WalkCase {
	allow := func(int) uint32 { return actionAllow }
	deny := func(rule int) func(int) uint32 {
		return func(n int) uint32 { return denyResult(n + rule) }
	}
	return []WalkCase{
		{"allow", fileFree, false, allow},
		{"allow-watched", fileSibling, false, allow},
		{"deny-inode", fileSecret, false, deny(ruleSecret)},
		{"deny-name", fileReplaced, false, deny(ruleReplaced)},
		{"allow-to-root", fileFree, true, allow},
		{"deny-subtree", fileDeep, true, deny(ruleTree)},
	}
}

// Levels returns how many directory levels the walk of w visits.
func (f *Fixture) Levels(w WalkCase) (int, error) {
	switch {
	case w.File == fileDeep:
		return 5, nil // file, c, b, a, tree
	case w.Subtrees:
		return f.depth(w.File)
	}
	return 1, nil
}

// Walk times walk case w.
func (f *Fixture) Walk(w WalkCase, repeat int, reset func()) (Result, error) {
	if f.WalkErr != nil {
		return Result{}, f.WalkErr
	}
	file, ok := f.files[w.File]
	if !ok {
		return Result{}, fmt.Errorf("walk case %s: no open file %s", w.Name, w.File)
	}
	if err := f.setSubtrees(w.Subtrees); err != nil {
		return Result{}, fmt.Errorf("setting subtree_devs: %w", err)
	}
	in := bpf.BenchBenchInput{Fd: uint32(file.Fd()), Count: 1}
	return f.run(f.objs.BenchWalk, in, repeat, reset)
}
