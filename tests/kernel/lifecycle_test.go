package kernel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/bpf"
)

// readEvents drains the instance's ring buffer until it is empty for a
// moment and returns the events.
func readEvents(t *testing.T, inst *engine.Instance) []bpf.AegisEvent {
	t.Helper()
	rd, err := ringbuf.NewReader(inst.Map(bpf.AegisMapEvents))
	if err != nil {
		t.Fatalf("opening ring buffer: %v", err)
	}
	defer rd.Close()
	var out []bpf.AegisEvent
	for {
		rd.SetDeadline(time.Now().Add(300 * time.Millisecond))
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("reading ring buffer: %v", err)
		}
		var ev bpf.AegisEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.LittleEndian, &ev); err != nil {
			t.Fatalf("decoding event: %v", err)
		}
		out = append(out, ev)
	}
}

func inoOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestAuditModeAllowsAndReports: in audit mode every vector is allowed and
// each access yields exactly one would-block event naming its rule.
func TestAuditModeAllowsAndReports(t *testing.T) {
	e, dir := setup(t)
	p := layoutTree(t, dir)
	inst := protectTree(t, e, p, true)
	readEvents(t, inst) // nothing yet

	accesses := []struct {
		path string
		rule uint32
	}{
		{p.secret, 0}, {p.subFile, 1}, {p.deep, 1},
	}
	for _, a := range accesses {
		wantAllowed(t, "audit-mode open of "+a.path, openErr(a.path))
	}
	f, err := os.OpenFile(p.secret, os.O_RDWR, 0)
	wantAllowed(t, "audit-mode read-write open", err)
	if f != nil {
		f.Close()
	}
	evs := readEvents(t, inst)
	if len(evs) != len(accesses)+1 {
		t.Fatalf("got %d events, want %d (one per access): %+v", len(evs), len(accesses)+1, evs)
	}
	for i, a := range accesses {
		ev := evs[i]
		if ev.Action != 2 || ev.Rule != a.rule || ev.Ino != inoOf(t, a.path) || ev.Hook != 0 {
			t.Errorf("event %d = action %d rule %d ino %d hook %d, want audit rule %d ino %d file_open",
				i, ev.Action, ev.Rule, ev.Ino, ev.Hook, a.rule, inoOf(t, a.path))
		}
		if path := unix.ByteSliceToString(int8sToBytes(ev.Path[:])); !strings.HasSuffix(path, filepath.Base(a.path)) {
			t.Errorf("event %d path %q does not name %s", i, path, a.path)
		}
		if ev.Tgid != uint32(os.Getpid()) {
			t.Errorf("event %d tgid %d, want %d", i, ev.Tgid, os.Getpid())
		}
	}
	if last := evs[len(evs)-1]; last.Access != 1 {
		t.Errorf("read-write open reported access %d, want 1 (write)", last.Access)
	}
	// Audit mode still keeps protected paths from being moved.
	if err := os.Rename(p.secret, p.secret+".moved"); err != nil {
		t.Errorf("audit-mode rename: %v, want allowed", err)
	}
}

func int8sToBytes(s []int8) []byte {
	b := make([]byte, len(s))
	for i, v := range s {
		b[i] = byte(v)
	}
	return b
}

// TestCgroupScope: a rule scoped to a cgroup denies there and below and
// allows elsewhere; an exempted cgroup is exempt. The rules are applied
// before any of the cgroups exist (as at boot, where the agent starts
// before the services whose cgroups a policy names), and an exempted cgroup
// removed and created again is still exempt: scopes match by path.
func TestCgroupScope(t *testing.T) {
	e, dir := setup(t)
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "s")
	other := filepath.Join(dir, "other")
	writeFile(t, other, "o")
	const root = "/sys/fs/cgroup"
	for _, cg := range []string{"/aegis-scoped", "/aegis-scoped/child", "/aegis-scoped-x", "/aegis-exempt"} {
		if _, err := os.Stat(root + cg); err == nil {
			t.Fatalf("cgroup %s exists before the test", cg)
		}
	}
	apply(t, e, true,
		engine.FileRule{ID: "scoped", Path: secret, Access: engine.AccessRead,
			Scope: engine.Scope{Mode: engine.ScopeOnly, Cgroups: []string{"/aegis-scoped"}}},
		engine.FileRule{ID: "exempted", Path: other, Access: engine.AccessRead,
			Scope: engine.Scope{Mode: engine.ScopeExcept, Cgroups: []string{"/aegis-exempt"}}})

	mk := func(cg string) {
		if err := os.Mkdir(root+cg, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Removed deepest first.
	cgs := []string{"/aegis-scoped", "/aegis-scoped/child", "/aegis-scoped-x", "/aegis-exempt"}
	t.Cleanup(func() {
		for i := len(cgs) - 1; i >= 0; i-- {
			os.Remove(root + cgs[i])
		}
	})
	for _, cg := range cgs {
		mk(cg)
	}
	runIn := func(cg, path string) int {
		fd, err := unix.Open(root+cg, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		cmd := helper("open", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		return status(t, cmd)
	}
	for _, c := range []struct {
		cg, path string
		want     int
	}{
		{"/aegis-scoped", secret, 13},
		{"/aegis-scoped", secret, 13}, // again: from the scope cache
		{"/aegis-scoped/child", secret, 13},
		{"/aegis-scoped-x", secret, 0}, // a name that only starts like the scope's
		{"/aegis-exempt", secret, 0},
		{"/aegis-exempt", other, 0},
		{"/aegis-scoped-x", other, 13},
		{"/aegis-scoped/child", other, 13},
	} {
		if got := runIn(c.cg, c.path); got != c.want {
			t.Errorf("open of %s in %s: status %d, want %d", filepath.Base(c.path), c.cg, got, c.want)
		}
	}
	wantAllowed(t, "open of the scoped rule's file from the test's own cgroup", openErr(secret))
	wantDenied(t, "open of the exempted rule's file from the test's own cgroup", openErr(other))

	// A re-created cgroup has another id and the same path.
	if err := os.Remove(root + "/aegis-exempt"); err != nil {
		t.Fatal(err)
	}
	mk("/aegis-exempt")
	if got := runIn("/aegis-exempt", other); got != 0 {
		t.Errorf("open in the re-created exempt cgroup: status %d, want 0", got)
	}
}

// TestContinuityAcrossAgentKills: while an agent process is SIGKILLed and
// restarted 10 times, a loop opening the denied file never succeeds, and
// each new agent leaves exactly one instance pinned.
func TestContinuityAcrossAgentKills(t *testing.T) {
	e, dir := setup(t)
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "s")
	apply(t, e, true, engine.FileRule{ID: "r0", Path: secret, Access: engine.AccessRead | engine.AccessWrite})

	var opened, tries atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tries.Add(1)
			if openErr(secret) == nil {
				opened.Add(1)
			}
			pause()
		}
	}()
	// 10: each restart re-verifies and attaches every program, 7 s under
	// TCG on 6.12; more restarts add minutes and no new interleaving.
	const restarts = 10
	for i := 0; i < restarts; i++ {
		cmd := helper("agent", e.Root, secret)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("agent %d did not get ready: %q", i, line)
		}
		if ids, _ := e.List(); len(ids) != 1 {
			t.Errorf("after agent %d took over: %d instances pinned, want 1", i, len(ids))
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	close(stop)
	wg.Wait()
	if n := opened.Load(); n != 0 {
		t.Fatalf("the denied file opened %d times out of %d during %d agent kills", n, tries.Load(), restarts)
	}
	t.Logf("%d opens, all denied, across %d SIGKILLed agents", tries.Load(), restarts)
}

// TestAtomicPolicySwap: racing readers never see a file that old and new
// policy both deny opened, nor one both allow denied, while the policy
// flips between A and B.
func TestAtomicPolicySwap(t *testing.T) {
	e, dir := setup(t)
	f := map[string]string{}
	for _, n := range []string{"onlyA", "both", "onlyB", "neither"} {
		f[n] = filepath.Join(dir, n)
		writeFile(t, f[n], n)
	}
	rule := func(id, p string) engine.FileRule {
		return engine.FileRule{ID: id, Path: p, Access: engine.AccessRead}
	}
	polA := []engine.FileRule{rule("a", f["onlyA"]), rule("both", f["both"])}
	polB := []engine.FileRule{rule("both", f["both"]), rule("b", f["onlyB"])}
	apply(t, e, true, polA...)

	var bothOpened, neitherDenied, reads atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				reads.Add(1)
				if openErr(f["both"]) == nil {
					bothOpened.Add(1)
				}
				if openErr(f["neither"]) != nil {
					neitherDenied.Add(1)
				}
				pause()
			}
		}()
	}
	for i := 0; i < 4; i++ {
		pol := polB
		if i%2 == 1 { // the last swap, i == 3, applies A
			pol = polA
		}
		apply(t, e, true, pol...)
	}
	close(stop)
	wg.Wait()
	if bothOpened.Load() != 0 || neitherDenied.Load() != 0 {
		t.Fatalf("during 4 swaps: file denied by both policies opened %d times, file allowed by both denied %d times (of %d reads)",
			bothOpened.Load(), neitherDenied.Load(), reads.Load())
	}
	// The last policy applied is A.
	wantDenied(t, "onlyA after the last swap", openErr(f["onlyA"]))
	wantAllowed(t, "onlyB after the last swap", openErr(f["onlyB"]))
	t.Logf("%d racing read pairs, no violation", reads.Load())
}

// TestRingBufferFloodCountsDrops: a burst far beyond the ring buffer's
// capacity is denied every time, and events read plus drops counted equals
// the number of denials exactly.
func TestRingBufferFloodCountsDrops(t *testing.T) {
	e, dir := setup(t)
	e.RingBufferSize = 4096 // one page: about ten events
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "s")
	inst := apply(t, e, true, engine.FileRule{ID: "r0", Path: secret, Access: engine.AccessRead})

	const n = 5000
	for i := 0; i < n; i++ {
		if err := openErr(secret); !errors.Is(err, unix.EPERM) {
			t.Fatalf("open %d: %v, want EPERM", i, err)
		}
	}
	read := len(readEvents(t, inst))
	drops := sumPerCPU(t, inst, bpf.AegisMapStats, 0)
	if read == 0 || drops == 0 {
		t.Fatalf("read %d events and counted %d drops: the flood should fill the buffer", read, drops)
	}
	if uint64(read)+drops != n {
		t.Fatalf("events read %d + drops %d = %d, want exactly %d", read, drops, uint64(read)+drops, n)
	}
	var counters []bpf.AegisRuleCounter
	if err := inst.Map(bpf.AegisMapRuleCounters).Lookup(uint32(0), &counters); err != nil {
		t.Fatal(err)
	}
	var denied uint64
	for _, c := range counters {
		denied += c.Denied
	}
	if denied != n {
		t.Fatalf("rule counter says %d denials, want %d", denied, n)
	}
	t.Logf("%d denials: %d events delivered, %d dropped and counted", n, read, drops)
}

// pause blocks briefly. Attaching a BPF trampoline waits for an RCU Tasks
// grace period, which needs every task to block or run in user mode now
// and then; a loop that lives in the kernel (open after open under TCG)
// would hold it off indefinitely. Real workloads block; probe loops must too.
func pause() { time.Sleep(20 * time.Microsecond) }

func sumPerCPU(t *testing.T, inst *engine.Instance, m string, key uint32) uint64 {
	t.Helper()
	var vals []uint64
	if err := inst.Map(m).Lookup(key, &vals); err != nil {
		t.Fatalf("reading %s[%d]: %v", m, key, err)
	}
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum
}

// TestCapacityRefusalKeepsPolicy: a policy larger than the maps is refused
// with a clear error, and the running policy keeps enforcing.
func TestCapacityRefusalKeepsPolicy(t *testing.T) {
	e, dir := setup(t)
	var files []string
	for _, n := range []string{"a", "b", "c", "d"} {
		files = append(files, filepath.Join(dir, n))
		writeFile(t, files[len(files)-1], n)
	}
	apply(t, e, true, engine.FileRule{ID: "a", Path: files[0], Access: engine.AccessRead})
	before, _ := e.List()

	e.MaxEntries = 2
	var big []engine.FileRule
	for i, f := range files[1:] {
		big = append(big, engine.FileRule{ID: string(rune('b' + i)), Path: f, Access: engine.AccessRead})
	}
	rs, err := engine.Resolve(engine.FileRules(true, big...), engine.HostFS)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Apply(rs)
	if !errors.Is(err, engine.ErrCapacity) || !strings.Contains(err.Error(), "capacity is 2") {
		t.Fatalf("Apply of an oversized policy: %v, want a capacity error", err)
	}
	after, _ := e.List()
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("instances changed from %v to %v", before, after)
	}
	wantDenied(t, "the running policy still enforces", openErr(files[0]))
	wantAllowed(t, "the refused policy did not apply", openErr(files[1]))
}
