package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/agent/update"
	"github.com/aegisbpf/aegisbpf/image/layer/layertest"
	"github.com/aegisbpf/aegisbpf/tests/e2e"
	"github.com/aegisbpf/aegisbpf/tests/fleet/infra"
)

var (
	hostCount = flag.Int("fleet.hosts", 1000, "updater processes in the simulation")
	scrape    = flag.Duration("fleet.scrape", 4*time.Second, "Prometheus' scrape interval")
	keep      = flag.Bool("fleet.keep", false, "keep the simulation's files (hosts, servers' logs) for a post-mortem")
	interval  = flag.Duration("fleet.interval", 10*time.Second, "each host's time between runs, and the most its random delay adds")
)

// Versions of the simulation: every host runs v1; v2 is good; v3's
// stand-in activation fails (its agent would fail probation).
const (
	v1, v2, v3  = "1.0.0", "2.0.0", "3.0.0"
	channelName = "fleet"
)

// sim is one run of the simulation.
type sim struct {
	t        *testing.T
	ctx      context.Context
	work     string // binaries, layers, servers' files
	aegisbpf string // the CLI, for the channel verbs
	keyPath  string
	keysDir  string
	layers   map[string]string
	pub      string // the static tree nginx serves
	reg      *infra.Registry
	web      *infra.Static
	prom     *infra.Prometheus
	hosts    []*host
	start    time.Time
}

// host is one updater process.
type host struct {
	id   string // machine id
	dir  string
	cmd  *exec.Cmd
	port int
}

// TestFleet runs the fleet simulation (make test-fleet): waves open by
// machine-id hash, the gate opens the next wave on Prometheus' word, a bad
// release is halted with no host outside its first wave touched, and a
// replayed older channel is refused by every host.
func TestFleet(t *testing.T) {
	if os.Getenv("AEGISBPF_FLEET") != "1" {
		t.Skip("the fleet simulation runs in make test-fleet (AEGISBPF_FLEET=1)")
	}
	s := newSim(t)
	s.log("%d updater processes running, %d up in Prometheus", len(s.hosts), len(s.hosts))

	// Wave 1 of v2: 5% of the fleet, by hash of machine id and version.
	opened := time.Now()
	s.cli(0, "channel", "publish", "--name", channelName, "--waves", "0.05,0.25,0.5,1", v2dir(s))
	wave1 := s.expected(v2, 0.05)
	s.waitWave(v2, wave1, 90*time.Second)
	s.waitQuery(`count(aegisbpf_update_channel_serial == 1)`, float64(len(s.hosts)), 90*time.Second)
	s.checkActivations(v2, wave1, "wave 1")
	s.timeline(v2, wave1, nil, opened, "wave 1 (5%)")
	firstEdition, firstSig := s.readChannel()

	// The gate: v2 healthy, wave 2 (25%) opens; asked again at once, it
	// waits for the new wave's hosts.
	opened = time.Now()
	out := s.cli(0, "channel", "advance", "--prometheus", s.prom.URL, "--bake", "0s")
	if !strings.HasPrefix(out, "open:") {
		t.Fatalf("channel advance: %s", out)
	}
	out = s.cli(3, "channel", "advance", "--prometheus", s.prom.URL, "--bake", "0s")
	s.log("channel advance right after: %s", firstLine(out))
	wave2 := s.expected(v2, 0.25)
	s.waitWave(v2, wave2, 90*time.Second)
	s.checkActivations(v2, wave2, "wave 2")
	s.timeline(v2, wave2, wave1, opened, "wave 2 (25%)")

	// v3 is bad: its first wave installs and rolls back; the gate, asked
	// every two seconds as an operator's job would, halts it.
	published := time.Now()
	s.cli(0, "channel", "publish", "--waves", "0.05,0.25,0.5,1", v3dir(s))
	bad1 := s.expected(v3, 0.05)
	var halted time.Time
	for deadline := time.Now().Add(2 * time.Minute); ; {
		code, out := s.cliCode("channel", "advance", "--release", v3, "--prometheus", s.prom.URL, "--bake", "0s")
		if code == 4 {
			halted = time.Now()
			s.log("channel advance --release %s: %s", v3, firstLine(out))
			break
		}
		if code != 3 || time.Now().After(deadline) {
			t.Fatalf("channel advance --release %s: exit %d: %s", v3, code, out)
		}
		time.Sleep(2 * time.Second)
	}
	s.waitQuery(`count(aegisbpf_update_channel_serial == 4)`, float64(len(s.hosts)), 90*time.Second)
	// Every host has run with the halted edition since (it reports its
	// serial): whatever it activated before is in its journal, and no
	// edition from then on offers 3.0.0.
	everyone := time.Now()
	tried := s.activated(v3)
	for id := range tried {
		if !bad1[id] {
			t.Errorf("host %s outside the first wave of %s activated it", id, v3)
		}
	}
	if len(tried) == 0 {
		t.Fatalf("no host tried %s: the gate halted on nothing", v3)
	}
	rolledBack := s.query(fmt.Sprintf(`sum(aegisbpf_update_rollbacks_total{version=%q})`, v3))
	s.log("%s: %d hosts in its first wave, %d activated it and rolled back (Prometheus: %g rollbacks); none outside the wave",
		v3, len(bad1), len(tried), rolledBack)
	s.log("time to halt: %s from publishing %s to the halted edition; %s until every host had accepted it",
		halted.Sub(published).Round(100*time.Millisecond), v3, everyone.Sub(published).Round(100*time.Millisecond))

	// A replayed older edition (serial 1) on both the registry and nginx
	// is refused by every host.
	s.serveChannel(firstEdition, firstSig)
	replayed := time.Now()
	s.waitQuery(`count(aegisbpf_update_last_check_result{result="replayed"})`, float64(len(s.hosts)), 90*time.Second)
	s.waitQuery(`count(aegisbpf_update_channel_serial == 4)`, float64(len(s.hosts)), 10*time.Second)
	s.log("replayed serial 1: refused by all %d hosts within %s; every host still holds serial 4",
		len(s.hosts), time.Since(replayed).Round(100*time.Millisecond))
	s.log("simulation: %s in all", time.Since(s.start).Round(time.Second))
}

func v2dir(s *sim) string { return s.layers[v2] }
func v3dir(s *sim) string { return s.layers[v3] }

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func (s *sim) log(format string, args ...any) {
	s.t.Helper()
	s.t.Logf("[%6.1fs] %s", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

func newSim(t *testing.T) *sim {
	s := &sim{t: t, ctx: t.Context(), work: t.TempDir(), start: time.Now(), layers: map[string]string{}}
	if *keep {
		var err error
		if s.work, err = os.MkdirTemp("", "aegisbpf-fleet-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping the simulation's files in %s", s.work)
	}
	raiseFileLimit(t)
	repo, err := e2e.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s.aegisbpf = filepath.Join(s.work, "aegisbpf")
	fleethost := filepath.Join(s.work, "fleethost")
	for bin, pkg := range map[string]string{s.aegisbpf: "./agent/cmd/aegisbpf", fleethost: "./tests/fleet/cmd/fleethost"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	for i, v := range []string{v1, v2, v3} {
		_, in, err := layertest.Build(s.ctx, filepath.Join(s.work, "layers", v), layertest.Config{Version: v, Serial: uint64(i + 1), AgentSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		s.layers[v] = filepath.Join(s.work, "layers", v, "layer")
		s.keyPath, s.keysDir = in.KeyPath, in.KeysDir
	}
	s.log("built aegisbpf, fleethost and layers %s, %s, %s", v1, v2, v3)

	logs := filepath.Join(s.work, "servers")
	must(t, os.MkdirAll(logs, 0o755))
	s.pub = filepath.Join(s.work, "pub")
	must(t, os.MkdirAll(s.pub, 0o755))
	serverLog, err := os.Create(filepath.Join(logs, "servers.log"))
	must(t, err)
	t.Cleanup(func() { serverLog.Close() })
	if s.reg, err = infra.StartRegistry(s.ctx, filepath.Join(logs, "registry"), serverLog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.reg.Stop() })
	if s.web, err = infra.StartStatic(s.ctx, filepath.Join(logs, "nginx"), s.pub, serverLog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.web.Stop() })
	s.log("registry on %s, nginx on %s", s.reg.Addr, s.web.URL)

	// Host state on tmpfs where there is one: a thousand state files
	// written and synced every few seconds.
	root := filepath.Join(s.work, "hosts")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if root, err = os.MkdirTemp("/dev/shm", "aegisbpf-fleet-"); err != nil {
			t.Fatal(err)
		}
		if !*keep {
			t.Cleanup(func() { os.RemoveAll(root) })
		}
	}
	t.Cleanup(s.stopHosts)
	for i := range *hostCount {
		h := &host{id: machineID(t), dir: filepath.Join(root, fmt.Sprintf("%04d", i))}
		must(t, os.MkdirAll(h.dir, 0o755))
		must(t, StandInActivation{Dir: h.dir}.Seed(v1, 1))
		loc := "oci://" + s.reg.Addr + "/aegisbpf:" + channelName
		if i%2 == 1 {
			loc = s.web.URL + "/" + update.ChannelFile
		}
		logf, err := os.Create(filepath.Join(h.dir, "log"))
		must(t, err)
		h.cmd = exec.Command(fleethost, "-dir", h.dir, "-machine-id", h.id, "-channel", loc, "-keys", s.keysDir,
			"-port-file", filepath.Join(h.dir, "port"), "-fail", v3, "-interval", (*interval).String(), "-jitter", (*interval).String())
		h.cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=200")
		h.cmd.Stdout, h.cmd.Stderr = logf, logf
		h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := h.cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("starting host %d: %v", i, err)
		}
		logf.Close()
		s.hosts = append(s.hosts, h)
	}
	var targets []string
	for deadline := time.Now().Add(time.Minute); len(targets) < len(s.hosts); {
		targets = targets[:0]
		for _, h := range s.hosts {
			if h.port == 0 {
				if b, err := os.ReadFile(filepath.Join(h.dir, "port")); err == nil {
					h.port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				}
			}
			if h.port != 0 {
				targets = append(targets, fmt.Sprintf("127.0.0.1:%d", h.port))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hosts listening after a minute", len(targets), len(s.hosts))
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.log("%d hosts listening", len(targets))
	if s.prom, err = infra.StartPrometheus(s.ctx, filepath.Join(logs, "prometheus"), targets, *scrape, serverLog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.prom.Stop() })
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	if err := s.prom.WaitTargets(ctx, len(targets)); err != nil {
		t.Fatal(err)
	}
	s.waitQuery(`count(aegisbpf_update_state_ok == 1)`, float64(len(s.hosts)), 90*time.Second)
	return s
}

func (s *sim) stopHosts() {
	for _, h := range s.hosts {
		if h.cmd.Process != nil {
			h.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, h := range s.hosts {
		if h.cmd.Process != nil {
			h.cmd.Wait()
		}
	}
}

func machineID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// raiseFileLimit lifts the soft limit on open files to the hard one: the
// servers and a thousand hosts inherit it.
func raiseFileLimit(t *testing.T) {
	var l syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l))
	l.Cur = l.Max
	must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l))
}

// cli runs aegisbpf with the channel flags and wants exit code want.
func (s *sim) cli(want int, args ...string) string {
	s.t.Helper()
	code, out := s.cliCode(args...)
	if code != want {
		s.t.Fatalf("aegisbpf %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

func (s *sim) cliCode(args ...string) (int, string) {
	s.t.Helper()
	// The channel flags go right after the verb, before any layer directory.
	args = append(append(slices.Clone(args[:2]), "--key", s.keyPath, "--dir", s.pub, "--oci", s.reg.Addr+"/aegisbpf"), args[2:]...)
	cmd := exec.CommandContext(s.ctx, s.aegisbpf, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		s.t.Fatalf("aegisbpf %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String()
}

// expected is the set of machine ids whose position for version is below
// fraction: the hosts its waves up to fraction cover.
func (s *sim) expected(version string, fraction float64) map[string]bool {
	out := map[string]bool{}
	for _, h := range s.hosts {
		if update.Position(h.id, version) < fraction {
			out[h.id] = true
		}
	}
	return out
}

// activated returns the hosts whose stand-in activated version, with the
// time of the first activation.
func (s *sim) activated(version string) map[string]time.Time {
	s.t.Helper()
	out := map[string]time.Time{}
	for _, h := range s.hosts {
		acts, err := Journal(h.dir)
		must(s.t, err)
		for _, a := range acts {
			if a.Version == version {
				if _, ok := out[h.id]; !ok {
					out[h.id] = a.Time
				}
			}
		}
	}
	return out
}

// checkActivations wants exactly the hosts of want to have activated version.
func (s *sim) checkActivations(version string, want map[string]bool, what string) {
	s.t.Helper()
	got := s.activated(version)
	for id := range got {
		if !want[id] {
			s.t.Errorf("%s of %s: host %s outside the wave activated it", what, version, id)
		}
	}
	for id := range want {
		if _, ok := got[id]; !ok {
			s.t.Errorf("%s of %s: host %s in the wave did not activate it", what, version, id)
		}
	}
}

// timeline logs when the hosts a wave added (in wave, not in before)
// activated version, from opened.
func (s *sim) timeline(version string, wave, before map[string]bool, opened time.Time, what string) {
	var ds []time.Duration
	for id, at := range s.activated(version) {
		if wave[id] && !before[id] {
			ds = append(ds, at.Sub(opened))
		}
	}
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	pct := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))].Round(100 * time.Millisecond) }
	s.log("%s of %s: %d more hosts, %d of %d (%.1f%%) in all; after the wave opened: first %s, median %s, last %s",
		what, version, len(ds), len(wave), len(s.hosts), 100*float64(len(wave))/float64(len(s.hosts)), pct(0), pct(0.5), pct(1))
}

func (s *sim) readChannel() ([]byte, []byte) {
	s.t.Helper()
	data, err := os.ReadFile(filepath.Join(s.pub, update.ChannelFile))
	must(s.t, err)
	sig, err := os.ReadFile(filepath.Join(s.pub, update.ChannelSignatureFile))
	must(s.t, err)
	return data, sig
}

// serveChannel puts an edition, as it is, on nginx and the registry.
func (s *sim) serveChannel(data, sig []byte) {
	s.t.Helper()
	must(s.t, atomicfile.Write(filepath.Join(s.pub, update.ChannelSignatureFile), sig, 0o644))
	must(s.t, atomicfile.Write(filepath.Join(s.pub, update.ChannelFile), data, 0o644))
	repo, err := nameRepository(s.reg.Addr + "/aegisbpf")
	must(s.t, err)
	must(s.t, update.PushChannel(s.ctx, repo, channelName, data, sig))
}

func (s *sim) query(q string) float64 {
	s.t.Helper()
	v, _, err := (&update.Prometheus{Address: s.prom.URL, Client: update.DefaultClient()}).Query(s.ctx, q, time.Now())
	must(s.t, err)
	return v
}

// waitWave waits until Prometheus reports exactly the hosts of wave on
// version; on a timeout it says what the missing hosts last did.
func (s *sim) waitWave(version string, wave map[string]bool, limit time.Duration) {
	s.t.Helper()
	q := fmt.Sprintf(`count(aegisbpf_update_current_info{version=%q})`, version)
	if s.poll(q, float64(len(wave)), limit) {
		return
	}
	for _, h := range s.hosts {
		if !wave[h.id] {
			continue
		}
		st, err := update.LoadState(filepath.Join(h.dir, "update"))
		if err != nil || st.Current == version {
			continue
		}
		log, _ := os.ReadFile(filepath.Join(h.dir, "log"))
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		s.t.Logf("host %s (%s) is not on %s: last check %+v; log: %s", h.id, h.dir, version, st.LastCheck, strings.Join(lines[max(0, len(lines)-3):], " | "))
	}
	s.t.Fatalf("%s != %d after %s", q, len(wave), limit)
}

// poll polls Prometheus until q returns want, and says whether it did.
func (s *sim) poll(q string, want float64, limit time.Duration) bool {
	p := &update.Prometheus{Address: s.prom.URL, Client: update.DefaultClient()}
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if v, _, err := p.Query(s.ctx, q, time.Now()); err == nil && v == want {
			return true
		}
	}
	return false
}

// waitQuery polls Prometheus until q returns want.
func (s *sim) waitQuery(q string, want float64, limit time.Duration) {
	s.t.Helper()
	p := &update.Prometheus{Address: s.prom.URL, Client: update.DefaultClient()}
	deadline := time.Now().Add(limit)
	for {
		v, _, err := p.Query(s.ctx, q, time.Now())
		if err == nil && v == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s = %v (%v), want %v after %s", q, v, err, want, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
