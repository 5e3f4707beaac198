package slot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/daemon"
	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/image/tools"
	"github.com/aegisbpf/aegisbpf/policy"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"golang.org/x/sys/unix"
)

// Where a host exposes the active layer.
const (
	// LayersDir holds the read-only mounts of activated layers.
	LayersDir = "/run/aegisbpf/layers"
	// ExtensionLink is what systemd-sysext merges: a symlink to the
	// active layer's mount. systemd-sysext requires the name to be the
	// extension's (extension-release.aegisbpf).
	ExtensionLink = "/run/extensions/" + layer.ExtensionName
	// AgentUnit and ProbationUnit are the units the slots drive.
	AgentUnit     = "aegisbpf.service"
	ProbationUnit = "aegisbpf-slot-probation.service"
	RollbackUnit  = "aegisbpf-slot-rollback.service"
)

// Host is the System of a real host: veritysetup, mount(2),
// systemd-sysext and systemctl.
type Host struct {
	Out io.Writer // the programs' diagnostics
}

// BootID implements System.
func (Host) BootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Verify implements System with layer.Verify.
func (Host) Verify(ctx context.Context, manifestPath string, ring keys.Ring) (*layer.Layer, error) {
	return layer.Verify(ctx, manifestPath, ring)
}

// deviceName is the dm-verity device of a slot's layer: the root hash in
// the name makes a reinstalled slot a new device.
func deviceName(slot string, l *layer.Layer) string {
	return "aegisbpf-" + slot + "-" + l.Manifest.Verity.RootHash[:16]
}

// Activate implements System.
func (h Host) Activate(ctx context.Context, slot string, l *layer.Layer) error {
	name := deviceName(slot, l)
	mnt := filepath.Join(LayersDir, name)
	steps := stepTimer{last: time.Now()}
	v, err := tools.FindVerity(ctx)
	if err != nil {
		return err
	}
	if err := h.mount(ctx, v, name, mnt, l); err != nil {
		return err
	}
	steps.done("dm-verity+mount")
	if err := checkMounted(mnt, l); err != nil {
		return err
	}
	if err := setPolicyFloor(mnt); err != nil {
		return err
	}
	reload := h.needReload(ctx, mnt)
	if err := linkExtension(mnt); err != nil {
		return err
	}
	if err := h.run(ctx, "systemd-sysext", "refresh"); err != nil {
		return err
	}
	steps.done("sysext refresh")
	if reload {
		if err := h.run(ctx, "systemctl", "daemon-reload"); err != nil {
			return err
		}
		steps.done("daemon-reload")
	} else {
		steps.done("no daemon-reload (units unchanged)")
	}
	h.cleanup(ctx, v, name)
	if h.Out != nil {
		fmt.Fprintf(h.Out, "activation steps: %s\n", steps)
	}
	return nil
}

// stepTimer records how long each step of an activation took, for the
// journal: under emulation or on a loaded host they are worth knowing.
type stepTimer struct {
	last  time.Time
	parts []string
}

func (s *stepTimer) done(step string) {
	now := time.Now()
	s.parts = append(s.parts, fmt.Sprintf("%s %s", step, now.Sub(s.last).Round(time.Millisecond)))
	s.last = now
}

func (s stepTimer) String() string { return strings.Join(s.parts, ", ") }

// mount opens the dm-verity device over the slot's files and mounts it
// read-only at mnt; both steps are skipped when already done.
func (h Host) mount(ctx context.Context, v *tools.Verity, name, mnt string, l *layer.Layer) error {
	dev := "/dev/mapper/" + name
	st, err := v.Status(ctx, name)
	if err != nil {
		return err
	}
	if st.Corrupted {
		return fmt.Errorf("dm-verity device %s has seen a corrupted block", name)
	}
	if !st.Active {
		if err := v.Open(ctx, name, l.ErofsPath, l.VerityPath, l.Manifest.Verity.RootHash); err != nil {
			return err
		}
	}
	if mounted, err := isMountPoint(mnt); err != nil {
		return err
	} else if mounted {
		return nil
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, mnt, "erofs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mounting %s on %s as erofs: %w", dev, mnt, err)
	}
	return nil
}

// checkMounted makes sure the mount is this layer: its extension-release
// names the manifest's version.
func checkMounted(mnt string, l *layer.Layer) error {
	rel, err := os.ReadFile(filepath.Join(mnt, layer.ExtensionReleaseFile))
	if err != nil {
		return fmt.Errorf("reading the mounted layer: %w", err)
	}
	if !bytes.Contains(rel, []byte("\nIMAGE_VERSION="+l.Manifest.Version+"\n")) {
		return fmt.Errorf("the layer mounted at %s is not version %s", mnt, l.Manifest.Version)
	}
	return nil
}

func setPolicyFloor(mnt string) error {
	p := filepath.Join(mnt, layer.PolicyFile)
	src, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading the layer's policy: %w", err)
	}
	pol, err := policy.Parse(layer.PolicyFile, src)
	if err != nil {
		return fmt.Errorf("the layer's policy: %w", err)
	}
	// The agent's policy serial floor (daemon.PolicySerialFile) becomes
	// the layer's: anti-rollback of layers is the slots' job, and a
	// rollback must be able to run the older policy.
	return daemon.WritePolicySerial(daemon.DefaultStateDir, pol.Serial())
}

// linkExtension points ExtensionLink at mnt atomically.
// needReload reports whether systemd must reload its units once the layer
// at mnt replaces the merged one: always, unless the merged layer's systemd
// tree (usr/lib/systemd: units, drop-ins, generators) is byte for byte the
// new one's and systemd has the agent's unit loaded. A reload costs seconds
// on a small host and is the slowest step of an update that keeps its
// units.
func (h Host) needReload(ctx context.Context, mnt string) bool {
	old, err := os.Readlink(ExtensionLink)
	if err != nil || old == "" {
		return true // at boot: nothing merged yet
	}
	if mounted, err := isMountPoint(old); err != nil || !mounted {
		return true
	}
	a, errA := systemdTreeDigest(old)
	b, errB := systemdTreeDigest(mnt)
	if errA != nil || errB != nil || a != b {
		return true
	}
	out, err := exec.CommandContext(ctx, "systemctl", "show", "-p", "LoadState", "--value", AgentUnit).Output()
	return err != nil || strings.TrimSpace(string(out)) != "loaded"
}

// systemdTreeDigest returns a SHA-256 over usr/lib/systemd below root:
// every entry's path, type, mode, and content or link target, in walk
// order. A layer without the directory has the digest of nothing.
func systemdTreeDigest(root string) (string, error) {
	dir := filepath.Join(root, "usr", "lib", "systemd")
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return fs.SkipDir
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%q %o\n", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", t)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%d\n", info.Size())
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func linkExtension(mnt string) error {
	dir := filepath.Dir(ExtensionLink)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(ExtensionLink)+".new")
	os.Remove(tmp)
	if err := os.Symlink(mnt, tmp); err != nil {
		return fmt.Errorf("linking the extension: %w", err)
	}
	if err := os.Rename(tmp, ExtensionLink); err != nil {
		return fmt.Errorf("linking the extension: %w", err)
	}
	return nil
}

// cleanup detaches the mounts and devices of layers other than keep.
// Busy ones (a running agent's binary) stay until a later activation.
func (h Host) cleanup(ctx context.Context, v *tools.Verity, keep string) {
	entries, err := os.ReadDir(LayersDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() == keep {
			continue
		}
		mnt := filepath.Join(LayersDir, e.Name())
		if mounted, _ := isMountPoint(mnt); mounted {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				continue
			}
		}
		if err := v.Close(ctx, e.Name()); err == nil {
			os.Remove(mnt)
		}
	}
}

func isMountPoint(p string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && UnescapeMount(fields[4]) == p {
			return true, nil
		}
	}
	return false, sc.Err()
}

// UnescapeMount undoes the octal escapes (\040 for a space) of a field of
// /proc/mounts or /proc/self/mountinfo.
func UnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (h Host) run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	if h.Out != nil && out.Len() > 0 {
		h.Out.Write(out.Bytes())
	}
	return nil
}

// Agent implements System.
func (h Host) Agent(ctx context.Context, a AgentAction) error {
	switch a {
	case AgentRestart:
		return h.run(ctx, "systemctl", "restart", AgentUnit)
	case AgentStart:
		return h.run(ctx, "systemctl", "start", "--no-block", AgentUnit)
	case AgentRecover:
		if err := h.run(ctx, "systemctl", "reset-failed", AgentUnit); err != nil {
			return err
		}
		return h.run(ctx, "systemctl", "start", "--no-block", AgentUnit)
	}
	return fmt.Errorf("unknown agent action %d", a)
}

// StartProbation implements System.
func (h Host) StartProbation(ctx context.Context) error {
	return h.run(ctx, "systemctl", "start", "--no-block", ProbationUnit)
}

// StartRollback implements System.
func (h Host) StartRollback(ctx context.Context) error {
	return h.run(ctx, "systemctl", "start", RollbackUnit)
}

// AgentHealth implements System with systemctl show.
func (h Host) AgentHealth(ctx context.Context) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	props := []string{"ActiveState", "SubState", "NRestarts", "ActiveEnterTimestampMonotonic",
		"WatchdogTimestampMonotonic", "WatchdogUSec"}
	out, err := exec.CommandContext(ctx, "systemctl", "show", "-p", strings.Join(props, ","), AgentUnit).Output()
	if err != nil {
		return Health{}, fmt.Errorf("systemctl show %s: %w", AgentUnit, err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Health{}, err
	}
	return parseShow(out, uint64(ts.Nano()/1000))
}

func parseShow(out []byte, now uint64) (Health, error) {
	kv := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			kv[k] = v
		}
	}
	h := Health{Now: now, State: kv["ActiveState"] + "/" + kv["SubState"]}
	h.Active = kv["ActiveState"] == "active" && kv["SubState"] == "running"
	num := func(k string) (uint64, error) {
		v := kv[k]
		if v == "" || v == "[not set]" {
			return 0, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("systemctl show: %s=%q is not a number", k, v)
		}
		return n, nil
	}
	var errs []error
	for _, f := range []struct {
		k string
		p *uint64
	}{{"NRestarts", &h.Restarts}, {"ActiveEnterTimestampMonotonic", &h.ActiveAt}, {"WatchdogTimestampMonotonic", &h.Watchdog}} {
		n, err := num(f.k)
		errs = append(errs, err)
		*f.p = n
	}
	h.WatchdogS = parseUSec(kv["WatchdogUSec"])
	return h, errors.Join(errs...)
}

// parseUSec reads systemctl's WatchdogUSec ("10s", "1min 30s", "0", or
// µs digits with --timestamp=... on newer systemd).
func parseUSec(v string) uint64 {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" || v == "infinity" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return n
	}
	var total time.Duration
	for f := range strings.FieldsSeq(v) {
		f = strings.Replace(f, "min", "m", 1)
		d, err := time.ParseDuration(f)
		if err != nil {
			return 0
		}
		total += d
	}
	return uint64(total / time.Microsecond)
}
