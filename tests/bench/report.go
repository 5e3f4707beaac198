package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Budget is the decision cost budget of DESIGN.md §7 at 100k rules, net of
// the empty program.
const Budget = 40 * time.Nanosecond

// Machine describes the host a report was measured on.
type Machine struct {
	CPU    string // model name from /proc/cpuinfo
	CPUs   int
	Kernel string
	JIT    string // from /proc/sys/net/core/bpf_jit_enable
	Date   time.Time
	Go     string
	// Load is /proc/loadavg's 1-minute figure when measuring began and
	// ended: other work on the machine slows memory-bound code like map
	// lookups (by 50% here at a load of 4 on 2 CPUs).
	LoadBefore, LoadAfter string
}

// LoadAvg is /proc/loadavg's 1-minute figure, "unknown" when unreadable.
func LoadAvg() string { return loadAvg() }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b) + " unknown")[0]
}

// ReadMachine reads the host's description; unreadable fields say so.
func ReadMachine(now time.Time) Machine {
	m := Machine{CPU: "unknown", Kernel: "unknown", JIT: "unknown", Date: now.UTC(), Go: runtime.Version(), LoadBefore: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			k, v, ok := strings.Cut(s.Text(), ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				m.CPUs++
			case k == "model name" && m.CPU == "unknown":
				m.CPU = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/sys/net/core/bpf_jit_enable"); err == nil {
		v := strings.TrimSpace(string(b))
		m.JIT = map[string]string{"0": "disabled (interpreter)", "1": "enabled", "2": "enabled, debug"}[v] + " (bpf_jit_enable = " + v + ")"
	}
	return m
}

// DecideRow is one bench_decide case at one rule count.
type DecideRow struct {
	Rules int
	Case  string
	One   time.Duration // OneKey
	All   time.Duration // AllKeys
}

// WalkRow is one bench_walk case at one rule count.
type WalkRow struct {
	Rules  int
	Case   string
	Levels int
	PerRun time.Duration
}

// Report is one run of the whole benchmark.
type Report struct {
	Machine
	Repeat, Runs int
	Empty        map[int]time.Duration // by rule count
	Decide       []DecideRow
	Walk         []WalkRow
	WalkErr      error  // why there are no walk rows
	FS           string // the file system of the walk's files
	Net          []NetRow
}

// Measure times every case at each rule count: the median of runs test
// runs of repeat repetitions each. The runs of all cases of one rule count
// are interleaved (run 1 of every case, then run 2, ...), so that a stretch
// of interference from outside, common in a virtual machine, spreads over
// all cases instead of shifting one. Each fixture is checked
// (Fixture.Check) before it is timed. progress, if not nil, is told what
// is being done.
func Measure(ctx context.Context, rules []int, repeat, runs int, progress func(string)) (*Report, error) {
	r := &Report{Machine: ReadMachine(time.Now()), Repeat: repeat, Runs: runs, Empty: map[int]time.Duration{}}
	for _, n := range rules {
		if progress != nil {
			progress(fmt.Sprintf("%d rules: loading and filling the maps", n))
		}
		f, err := Open(n, "")
		if err != nil {
			return nil, fmt.Errorf("%d rules: %w", n, err)
		}
		if progress != nil {
			progress(fmt.Sprintf("%d rules: timing", n))
		}
		err = r.measure(ctx, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%d rules: %w", n, err)
		}
	}
	r.LoadAfter = loadAvg()
	return r, nil
}

// timer is one figure being measured: timed is run, the median lands in dst.
type timer struct {
	name    string
	timed   func(repeat int, reset func()) (Result, error)
	dst     *time.Duration
	samples []time.Duration
}

func (r *Report) measure(ctx context.Context, f *Fixture) error {
	if err := f.Check(); err != nil {
		return fmt.Errorf("checking decisions: %w", err)
	}
	var empty time.Duration
	timers := []*timer{{name: "empty program", timed: f.Empty, dst: &empty}}
	decide := make([]DecideRow, 0, len(DecideCases()))
	for _, c := range DecideCases() {
		decide = append(decide, DecideRow{Rules: f.Rules, Case: c.Name})
		row := &decide[len(decide)-1]
		for _, k := range []struct {
			keys Keys
			dst  *time.Duration
		}{{OneKey, &row.One}, {AllKeys, &row.All}} {
			timers = append(timers, &timer{
				name:  fmt.Sprintf("decide %s, %s keys", c.Name, k.keys),
				timed: func(repeat int, reset func()) (Result, error) { return f.Decide(c, k.keys, repeat, reset) },
				dst:   k.dst,
			})
		}
	}
	var walk []WalkRow
	if f.WalkErr != nil {
		r.WalkErr = f.WalkErr
	} else {
		r.FS = f.FS
		walk = make([]WalkRow, 0, len(WalkCases()))
		for _, w := range WalkCases() {
			levels, err := f.Levels(w)
			if err != nil {
				return fmt.Errorf("walk %s: %w", w.Name, err)
			}
			walk = append(walk, WalkRow{Rules: f.Rules, Case: w.Name, Levels: levels})
			timers = append(timers, &timer{
				name:  "walk " + w.Name,
				timed: func(repeat int, reset func()) (Result, error) { return f.Walk(w, repeat, reset) },
				dst:   &walk[len(walk)-1].PerRun,
			})
		}
	}
	for range r.Runs {
		for _, t := range timers {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := t.timed(r.Repeat, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			t.samples = append(t.samples, res.PerRun)
		}
	}
	for _, t := range timers {
		slices.Sort(t.samples)
		*t.dst = t.samples[len(t.samples)/2]
	}
	r.Empty[f.Rules] = empty
	r.Decide = append(r.Decide, decide...)
	r.Walk = append(r.Walk, walk...)
	return nil
}

func ns(d time.Duration) string { return fmt.Sprintf("%d", d.Nanoseconds()) }

func ratio(d, empty time.Duration) string {
	if empty <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", float64(d)/float64(empty))
}

// table writes the machine table that heads each section.
func (m Machine) table(b *strings.Builder) {
	fmt.Fprintf(b, "| machine | |\n| --- | --- |\n")
	fmt.Fprintf(b, "| CPU | %s (%d CPUs) |\n| kernel | %s |\n| BPF JIT | %s |\n| date | %s |\n| Go | %s |\n| load average (1 min) | %s before, %s after |\n\n",
		m.CPU, m.CPUs, m.Kernel, m.JIT, m.Date.Format("2006-01-02 15:04 MST"), m.Go, m.LoadBefore, m.LoadAfter)
}

// Markdown writes the report as the tables of docs/PERFORMANCE.md.
func (r *Report) Markdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## Kernel decision cost on the host (BPF_PROG_TEST_RUN)\n\n")
	r.Machine.table(b)
	fmt.Fprintf(b, "Method: the decision functions of `bpf/lib` compiled into socket filter programs "+
		"(`bpf/bench.bpf.c`), each figure the median of %d `BPF_PROG_TEST_RUN` calls of %d runs "+
		"as the kernel times them (1 ns resolution), the calls of all cases of one rule count interleaved. *net* subtracts the empty socket filter program "+
		"timed on the same maps; *× empty* is the raw time over the empty program's. Synthetic rules "+
		"have the shape the engine writes for exact path rules (`rules`, `inode_rules`, `name_rules`, "+
		"`watched_dirs`; one protected name per directory). *one key* decides on the same object "+
		"every run (hot caches); *all keys* on each of the rules' objects in a scattered order. "+
		"Not included: the ring buffer event of a deny, the LSM call itself, cgroup-scoped rules. "+
		"Run `go run ./tests/bench/cmd/decisionbench` as root.\n\n", r.Runs, r.Repeat)

	fmt.Fprintf(b, "### Decision on the object itself (`bench_decide`), name hash precomputed\n\n")
	fmt.Fprintf(b, "Budget (DESIGN.md §7): ≤ %d ns net at 100k rules, allow and deny.\n\n", Budget.Nanoseconds())
	fmt.Fprintf(b, "| rules | case | one key ns | net | × empty | all keys ns | net | × empty | ≤ %d ns net (one / all) |\n", Budget.Nanoseconds())
	fmt.Fprintf(b, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	last := -1
	for _, row := range r.Decide {
		e := r.Empty[row.Rules]
		if row.Rules != last {
			fmt.Fprintf(b, "| %d | empty program | %s | | | | | | |\n", row.Rules, ns(e))
			last = row.Rules
		}
		verdict := func(d time.Duration) string {
			if d-e > Budget {
				return "**no**"
			}
			return "yes"
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Rules, row.Case,
			ns(row.One), ns(row.One-e), ratio(row.One, e), ns(row.All), ns(row.All-e), ratio(row.All, e), verdict(row.One)+" / "+verdict(row.All))
	}
	fmt.Fprintf(b, "\nCases: *allow*: no rule on the inode, parent not watched; *allow-watched*: parent "+
		"watched, name not protected; *deny-inode*: the inode is protected; *deny-name*: the name in "+
		"its parent is protected, the inode is not (a replaced file).\n\n")

	fmt.Fprintf(b, "### The file_open decision on real files (`bench_walk`)\n\n")
	if r.WalkErr != nil {
		fmt.Fprintf(b, "Not measured on this kernel: %v\n", r.WalkErr)
	} else {
		fmt.Fprintf(b, "`decide_dentry` from `lib/file.h` as the hook runs it, on a file on %s "+
			"reached through a descriptor of the running task (the reads that find it cost "+
			"about what the hook's `file_dentry` and `f_mode` reads cost): dentry reads, the name hash "+
			"over kernel memory, `bpf_loop`, and the walk to the root when the file's super block holds "+
			"a subtree rule. The same synthetic rules, plus three on the real files.\n\n", r.FS)
		fmt.Fprintf(b, "| rules | case | levels walked | ns | net | × empty |\n| ---: | --- | ---: | ---: | ---: | ---: |\n")
		for _, row := range r.Walk {
			e := r.Empty[row.Rules]
			fmt.Fprintf(b, "| %d | %s | %d | %s | %s | %s |\n", row.Rules, row.Case, row.Levels,
				ns(row.PerRun), ns(row.PerRun-e), ratio(row.PerRun, e))
		}
		fmt.Fprintf(b, "\nCases as above, on real files; *allow-to-root*: no rule, the super block holds a "+
			"subtree rule, so the walk reads every ancestor up to the file system root; *deny-subtree*: "+
			"a file four levels below a protected directory.\n")
	}
	r.netMarkdown(b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) netMarkdown(b *strings.Builder) {
	if len(r.Net) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### The network decision (`bench_net`)\n\n")
	fmt.Fprintf(b, "`decide_net` from `lib/net.h` as `socket_connect` runs it for an IPv4 TCP destination: "+
		"one hash lookup in `net4_rules` per prefix length the policy uses, longest first, until one hits, then the protocol and port check of the matching rule. "+
		"Rule *i* denies every other /24; *allow* connects to an address in each /24 between two denied ones, *deny* to an address in each denied "+
		"/24, all CIDRs in a scattered order. With *8* prefix lengths the policy also holds one prefix each of /32, /30, /28, /27, /26, /25 and /16 elsewhere, "+
		"so an allow probes 8 lengths and a deny 7 before its /24 hits. Budget (issue 5): ≤ %d ns net at 10k CIDRs.\n\n", NetBudget.Nanoseconds())
	fmt.Fprintf(b, "| CIDRs | prefix lengths | allow ns net | deny ns net | ≤ %d ns at 10k |\n| ---: | ---: | ---: | ---: | --- |\n", NetBudget.Nanoseconds())
	for _, row := range r.Net {
		verdict := ""
		if row.CIDRs >= 10000 {
			verdict = "yes"
			if row.Allow > NetBudget || row.Deny > NetBudget {
				verdict = "**no**"
			}
		}
		fmt.Fprintf(b, "| %d | %d | %s | %s | %s |\n", row.CIDRs, row.Lengths, ns(row.Allow), ns(row.Deny), verdict)
	}
}
