package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/tests/vm"
)

const (
	hookSignal = 10
	hookBPF    = 11
	// agentCgroup is where the protected agent runs, as systemd would run
	// it in /system.slice/aegisbpf.service.
	agentCgroup = "/sys/fs/cgroup/aegis-agent"
)

// runProtectedAgent is the helper "agent-protect ROOT": apply a policy
// holding the agent protection (PID 1 exempt), print "ready INSTANCE
// MAPID" (the id of its rules map), and wait to be killed.
func runProtectedAgent(root string) error {
	spec := engine.Spec{
		Enforce: true,
		Rules:   []engine.RuleSpec{{ID: "protect-agent"}, {ID: "test-net"}},
		Agent:   []engine.AgentTarget{{Rule: 0, ExemptPIDs: []uint32{1}}},
		// A network rule, so the instance has an inner map per prefix
		// length, which must be guarded like the others.
		Nets: []engine.NetTarget{{Rule: 1, Prefix: netip.MustParsePrefix("192.0.2.0/24")}},
	}
	rs, err := engine.Resolve(spec, engine.HostFS)
	if err != nil {
		return err
	}
	inst, err := (&engine.Engine{Root: root}).Apply(rs)
	if err != nil {
		return err
	}
	info, err := inst.Map(bpf.AegisMapRules).Info()
	if err != nil {
		return err
	}
	id, _ := info.ID()
	var inner uint32
	if err := inst.Map(bpf.AegisMapNet4Rules).Lookup(uint32(24), &inner); err != nil {
		return fmt.Errorf("looking up the map of /24 prefixes: %w", err)
	}
	fmt.Printf("ready %s %d %d\n", inst.ID, id, inner)
	for {
		time.Sleep(time.Hour)
	}
}

// protectedAgent is a running helper agent.
type protectedAgent struct {
	cmd      *exec.Cmd
	instance string
	mapID    ebpf.MapID
	innerID  ebpf.MapID // the map of the IPv4 /24 network prefixes
	exited   chan error
}

// startProtectedAgent starts bin (the test binary or a copy) as the helper
// agent in agentCgroup, and waits until it is ready.
func startProtectedAgent(t *testing.T, bin, root string) *protectedAgent {
	t.Helper()
	fd, err := unix.Open(agentCgroup, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := helper("agent-protect", root)
	cmd.Path, cmd.Args[0] = bin, bin
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the agent: %v", err)
	}
	a := &protectedAgent{cmd: cmd, exited: make(chan error, 1)}
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { io.Copy(io.Discard, out); a.exited <- cmd.Wait() }()
	f := strings.Fields(line)
	if err != nil || len(f) != 4 || f[0] != "ready" {
		t.Fatalf("agent did not get ready: %q %v", line, err)
	}
	a.instance = f[1]
	id, _ := strconv.ParseUint(f[2], 10, 32)
	a.mapID = ebpf.MapID(id)
	id, _ = strconv.ParseUint(f[3], 10, 32)
	a.innerID = ebpf.MapID(id)
	return a
}

// pid1Signal asks PID 1 (the VM's init) to send sig ("TERM", "KILL", ...)
// to pid, and returns the exit status of its kill.
func pid1Signal(t *testing.T, sig string, pid int) int {
	t.Helper()
	rc := vm.PID1SignalFile + ".rc"
	os.Remove(rc)
	if err := os.WriteFile(vm.PID1SignalFile, []byte(sig+" "+strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(1, unix.SIGUSR1); err != nil {
		t.Fatalf("asking PID 1 to signal: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(rc); err == nil && len(b) > 0 {
			n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return n
		}
	}
	t.Fatalf("PID 1 did not report sending SIG%s to %d", sig, pid)
	return -1
}

// joinCgroup moves the whole test process into cg.
func joinCgroup(t *testing.T, cg string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatalf("moving the test into %s: %v", cg, err)
	}
}

// protectRoot mounts a bpffs of the test's own and returns a pin root in
// it, so that the unmount attempt below can do no harm to other tests.
func protectRoot(t *testing.T, dir string) (mnt, root string) {
	t.Helper()
	mnt = filepath.Join(dir, "bpffs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mounting a bpffs: %v", err)
	}
	return mnt, filepath.Join(mnt, "aegisbpf")
}

func makeCgroup(t *testing.T, cg string) {
	t.Helper()
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("creating cgroup %s: %v", cg, err)
	}
}

// TestAgentSelfProtection: root outside the agent's cgroup cannot signal
// the agent to death or stop, ptrace it, open its maps or links with
// bpf(), remove or rename its pins, or unmount their bpffs, while its own
// use of bpf() keeps working; PID 1 can stop and kill the agent; an agent
// restarted from another executable in a re-created cgroup of the same
// name takes the pinned instance over.
func TestAgentSelfProtection(t *testing.T) {
	_, dir := setup(t)
	mnt, root := protectRoot(t, dir)
	makeCgroup(t, agentCgroup)
	var agents []*protectedAgent
	t.Cleanup(func() {
		// Only the agent may undo the agent: join its cgroup to clean up
		// (the documented limit: root that can join the cgroup is the agent).
		if _, err := os.Stat(agentCgroup); err == nil {
			joinCgroup(t, agentCgroup)
		}
		for _, a := range agents {
			a.cmd.Process.Kill()
			<-a.exited
		}
		releaseAll(t, &engine.Engine{Root: root})
		// Unmount from the agent's cgroup: a link detaches asynchronously
		// once its last reference goes, and until then the guard refuses
		// the unmount to anyone else (the temporary directory's removal
		// then fails on the mount point).
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test's bpffs from the agent's cgroup: %v", err)
		}
		joinCgroup(t, "/sys/fs/cgroup")
		os.Remove(agentCgroup)
	})

	a := startProtectedAgent(t, os.Args[0], root)
	agents = append(agents, a)
	pid := a.cmd.Process.Pid
	inst := filepath.Join(root, a.instance)

	t.Run("signals", func(t *testing.T) {
		for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGSTOP, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGABRT} {
			wantDenied(t, "kill "+unix.SignalName(sig), unix.Kill(pid, sig))
		}
		wantAllowed(t, "kill -0 (existence check)", unix.Kill(pid, 0))
		wantDenied(t, "tgkill SIGKILL", unix.Tgkill(pid, pid, unix.SIGKILL))
	})
	t.Run("ptrace", func(t *testing.T) {
		wantDenied(t, "ptrace attach", ptraceAttach(pid))
		if _, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", os.O_RDWR, 0); !errors.Is(err, unix.EACCES) {
			t.Errorf("open /proc/PID/mem: got %v, want EACCES", err)
		}
	})
	t.Run("pins", func(t *testing.T) { checkPinsGuarded(t, mnt, inst) })
	t.Run("bpf", func(t *testing.T) { checkBPFGuarded(t, inst, a.mapID, a.innerID) })
	t.Run("bpftool", func(t *testing.T) { checkBpftoolGuarded(t, inst) })
	t.Run("host bpf use", checkHostBPF)

	// PID 1 may stop, continue and terminate the agent (systemd's stop,
	// watchdog and restart). The pins outlive it and stay guarded.
	if rc := pid1Signal(t, "STOP", pid); rc != 0 {
		t.Errorf("PID 1's SIGSTOP: kill exit status %d", rc)
	}
	if rc := pid1Signal(t, "CONT", pid); rc != 0 {
		t.Errorf("PID 1's SIGCONT: kill exit status %d", rc)
	}
	if rc := pid1Signal(t, "TERM", pid); rc != 0 {
		t.Fatalf("PID 1's SIGTERM: kill exit status %d", rc)
	}
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not exit after PID 1's SIGTERM")
	}
	agents = nil
	wantDenied(t, "unlink a pin after the agent stopped", os.Remove(filepath.Join(inst, "maps", bpf.AegisMapRules)))

	// systemd removes the stopped service's cgroup and makes a new one
	// (another id) for the next start; an upgrade brings another binary.
	if err := os.Remove(agentCgroup); err != nil {
		t.Fatalf("removing the agent's cgroup: %v", err)
	}
	makeCgroup(t, agentCgroup)
	upgraded := filepath.Join(dir, "aegisbpf-upgraded")
	copyFile(t, os.Args[0], upgraded, 0o755)
	b := startProtectedAgent(t, upgraded, root)
	agents = append(agents, b)
	ids, err := (&engine.Engine{Root: root}).List()
	if err != nil || len(ids) != 1 || ids[0] != b.instance || b.instance == a.instance {
		t.Fatalf("after the takeover: instances %v (%v), want only the new agent's %s", ids, err, b.instance)
	}
	wantDenied(t, "kill the new agent", unix.Kill(b.cmd.Process.Pid, unix.SIGKILL))
	if rc := pid1Signal(t, "KILL", b.cmd.Process.Pid); rc != 0 {
		t.Errorf("PID 1's SIGKILL of the new agent: kill exit status %d", rc)
	}
	<-b.exited
	agents = nil
}

// checkPinsGuarded: no pin, pin directory or the bpffs itself can be
// removed, renamed or unmounted from under the agent.
func checkPinsGuarded(t *testing.T, mnt, inst string) {
	mapPin := filepath.Join(inst, "maps", bpf.AegisMapRules)
	linkPins, err := filepath.Glob(filepath.Join(inst, "links", "*"))
	if err != nil || len(linkPins) == 0 {
		t.Fatalf("no link pins in %s: %v", inst, err)
	}
	wantDenied(t, "unlink a link pin", os.Remove(linkPins[0]))
	wantDenied(t, "unlink a map pin", os.Remove(mapPin))
	wantDenied(t, "rename a link pin", os.Rename(linkPins[0], linkPins[0]+".moved"))
	wantDenied(t, "rename the instance directory", os.Rename(inst, inst+".moved"))
	wantDenied(t, "rmdir the links directory", unix.Rmdir(filepath.Join(inst, "links")))
	wantDenied(t, "unmount the bpffs", unix.Unmount(mnt, unix.MNT_DETACH))
}

// checkBPFGuarded: raw bpf() access to the agent's objects is refused.
func checkBPFGuarded(t *testing.T, inst string, mapID, innerID ebpf.MapID) {
	mapPin := filepath.Join(inst, "maps", bpf.AegisMapRules)
	_, err := ebpf.LoadPinnedMap(mapPin, nil)
	wantDenied(t, "BPF_OBJ_GET of a map pin", err)
	_, err = ebpf.LoadPinnedMap(mapPin, &ebpf.LoadPinOptions{ReadOnly: true})
	wantDenied(t, "BPF_OBJ_GET of a map pin, read-only", err)
	_, err = ebpf.NewMapFromID(mapID)
	wantDenied(t, "BPF_MAP_GET_FD_BY_ID", err)
	_, err = ebpf.NewMapFromID(innerID)
	wantDenied(t, "BPF_MAP_GET_FD_BY_ID of a network prefix map", err)
	stats, err := ebpf.LoadPinnedMap(filepath.Join(inst, "maps", bpf.AegisMapStats), &ebpf.LoadPinOptions{ReadOnly: true})
	wantAllowed(t, "reading the stats counters", err)
	if stats != nil {
		stats.Close()
	}
	if n := pinnedDecisions(t, inst, hookBPF*4+1); n < 3 {
		t.Errorf("bpf deny decisions = %d, want >= 3", n)
	}
	if n := pinnedDecisions(t, inst, hookSignal*4+1); n < 7 {
		t.Errorf("signal deny decisions = %d, want >= 7", n)
	}

	pin := firstLinkPin(t, inst)
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatalf("BPF_OBJ_GET of a link pin: %v", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	_, err = link.NewFromID(info.ID)
	wantDenied(t, "BPF_LINK_GET_FD_BY_ID", err)
	fdl, ok := l.(interface{ FD() int })
	if !ok {
		t.Fatalf("link %T has no descriptor", l)
	}
	if err := linkDetach(fdl.FD()); err == nil {
		t.Error("BPF_LINK_DETACH of the agent's LSM link succeeded")
	}
}

func firstLinkPin(t *testing.T, inst string) string {
	t.Helper()
	pins, err := filepath.Glob(filepath.Join(inst, "links", "*"))
	if err != nil || len(pins) == 0 {
		t.Fatalf("no link pins in %s: %v", inst, err)
	}
	return pins[0]
}

// linkDetach is BPF_LINK_DETACH, raw: an LSM link has no detach operation.
func linkDetach(fd int) error {
	attr := struct{ linkFD uint32 }{uint32(fd)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, 34 /* BPF_LINK_DETACH */, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return errno
	}
	return nil
}

func pinnedDecisions(t *testing.T, inst string, key uint32) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(inst, "maps", bpf.AegisMapDecisions), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening the decisions counters: %v", err)
	}
	defer m.Close()
	n, err := engine.SumPerCPU(m, key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkBpftoolGuarded: bpftool, the operator's tool, gets no further.
func checkBpftoolGuarded(t *testing.T, inst string) {
	const bpftool = "/usr/sbin/bpftool"
	if _, err := os.Stat(bpftool); err != nil {
		t.Fatalf("%s is not in the guest: the harness must provide it: %v", bpftool, err)
	}
	mapPin := filepath.Join(inst, "maps", bpf.AegisMapRules)
	l, err := link.LoadPinnedLink(firstLinkPin(t, inst), nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := l.Info()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"map", "update", "pinned", mapPin, "key", "0", "0", "0", "0", "value", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"},
		{"map", "dump", "pinned", mapPin},
		{"link", "detach", "id", strconv.Itoa(int(info.ID))},
	} {
		out, err := exec.Command(bpftool, args...).CombinedOutput()
		if err == nil {
			t.Errorf("bpftool %s succeeded: %s", strings.Join(args, " "), out)
		}
	}
}

// checkHostBPF: the host's own bpf() use (systemd's cgroup programs and
// maps, other tools) is untouched: maps, programs, pins and ids work.
func checkHostBPF(t *testing.T) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		t.Fatalf("creating a map: %v", err)
	}
	defer m.Close()
	if err := m.Put(uint32(1), uint32(2)); err != nil {
		t.Errorf("updating own map: %v", err)
	}
	info, _ := m.Info()
	id, _ := info.ID()
	if m2, err := ebpf.NewMapFromID(id); err != nil {
		t.Errorf("own map by id: %v", err)
	} else {
		m2.Close()
	}
	pin := filepath.Join("/sys/fs/bpf", "aegis-host-map")
	if err := m.Pin(pin); err != nil {
		t.Errorf("pinning own map: %v", err)
	} else if err := os.Remove(pin); err != nil {
		t.Errorf("unpinning own map: %v", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatalf("loading a socket filter: %v", err)
	}
	defer prog.Close()
	pinfo, _ := prog.Info()
	pid, _ := pinfo.ID()
	if p2, err := ebpf.NewProgramFromID(pid); err != nil {
		t.Errorf("own program by id: %v", err)
	} else {
		p2.Close()
	}
}
