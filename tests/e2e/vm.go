package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aegisbpf/aegisbpf/image/appliance"
	"github.com/aegisbpf/aegisbpf/tests/e2e/internal/wire"
)

const portName = wire.PortName

// Config is one VM.
type Config struct {
	// Appliance is the built appliance to boot (BuildAppliance adds the
	// guest agent the driver needs).
	Appliance *appliance.Appliance
	// WorkDir holds the VM's sockets, console.log and its /var disk copy.
	// Required; a short path (unix socket names are limited to 107 bytes).
	WorkDir string
	// VarImage is the /var disk to boot with, used in place and kept, so a
	// later VM can boot the same disk (power loss by killing qemu). Empty
	// means a fresh copy of the appliance's var.img in WorkDir.
	VarImage string
	// Timeout is a hard limit on the VM's life; 0 means 10 minutes.
	Timeout time.Duration
	// MemoryMB and CPUs default to 2048 and 2.
	MemoryMB, CPUs int
	// Accel is "tcg" or "kvm"; empty means $AEGISBPF_VM_ACCEL, else tcg.
	Accel string
	// ExtraCmdline is appended to the appliance's kernel command line.
	ExtraCmdline string
	// Console receives the serial console as it comes (besides
	// WorkDir/console.log); nil for none.
	Console io.Writer
	// Interactive attaches the serial console to this process's terminal
	// (stdin and stdout) instead of Console: a root shell for a person.
	// Ctrl-A x quits qemu. The control channel works as usual.
	Interactive bool
	// Log receives driver events (boots, resets); nil discards them.
	Log *slog.Logger
	// UserNet gives the guest one virtio NIC on qemu's user-mode network
	// (slirp, no privileges on the host), MAC UserNetMAC; UpUserNet
	// configures it in the guest. The guest then reaches the host's
	// loopback at UserNetHost, so every service listening on the host's
	// 127.0.0.1 (the test's registry, and anything else) and, through
	// qemu's NAT, whatever the host can reach. Nothing on the host can
	// reach the guest: no port is forwarded. Off by default: the
	// appliance has no network.
	UserNet bool
}

// The guest side of Config.UserNet: qemu's defaults for its user network.
const (
	UserNetMAC   = "52:54:00:ae:91:01"
	UserNetHost  = "10.0.2.2"     // the host's loopback, as the guest sees it
	UserNetGuest = "10.0.2.15/24" // the guest's address
)

// resetBurst is how close RESET events must follow each other to count as
// one reset.
const resetBurst = time.Second

// DefaultTimeout bounds a VM's life when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Minute

// VM is a running appliance.
type VM struct {
	cfg     Config
	log     *slog.Logger
	varDisk string
	started time.Time

	cmd     *exec.Cmd
	cancel  context.CancelFunc
	exited  chan struct{} // closed when qemu has exited
	exitErr error         // qemu's exit status, set before exited closes
	termios *syscall.Termios

	con  *console
	ch   *channel
	qmp  *qmp
	once sync.Once

	mu        sync.Mutex
	boot      BootInfo  // the last boot the agent answered from
	resetAt   time.Time // the last reset (start, reboot or system_reset)
	lastReset time.Time // the last RESET event
	resets    int
	portOpen  bool
}

// BootInfo identifies one boot of the guest.
type BootInfo struct {
	ID string // the kernel's boot id
	// Ready is how long after qemu started, or after the last reset, the
	// guest agent first answered.
	Ready time.Duration
	// Uptime is the guest's uptime when the agent first answered.
	Uptime time.Duration
}

// Start starts qemu on cfg.Appliance and returns at once; WaitReady waits
// for the guest. ctx bounds the VM's whole life, as does cfg.Timeout: when
// either ends, qemu is killed. Close the VM when done.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	v := &VM{cfg: cfg, log: cfg.Log, exited: make(chan struct{}), con: &console{done: make(chan struct{})}}
	v.varDisk = cfg.VarImage
	if v.varDisk == "" {
		v.varDisk = filepath.Join(cfg.WorkDir, "var.img")
		if err := copySparse(cfg.Appliance.Path(cfg.Appliance.Var), v.varDisk); err != nil {
			return nil, fmt.Errorf("copying the /var disk: %w", err)
		}
	}
	ctlSock, qmpSock := filepath.Join(cfg.WorkDir, "ctl.sock"), filepath.Join(cfg.WorkDir, "qmp.sock")
	for _, s := range []string{ctlSock, qmpSock} {
		if len(s) > 107 {
			return nil, fmt.Errorf("socket path %s is too long for a unix socket: use a shorter WorkDir", s)
		}
		os.Remove(s)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 is not installed (make deps installs qemu-system-x86): %w", err)
	}
	logFile, err := os.Create(filepath.Join(cfg.WorkDir, "console.log"))
	if err != nil {
		return nil, fmt.Errorf("creating the console log: %w", err)
	}

	args := qemuArgs(cfg, v.varDisk, ctlSock, qmpSock)
	lifeCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	v.cancel = cancel
	cmd := exec.CommandContext(lifeCtx, "qemu-system-x86_64", args...)
	cmd.Stderr = os.Stderr
	var stdout io.ReadCloser
	if cfg.Interactive {
		// qemu must stay in the terminal's foreground process group to read
		// it, so it gets no group of its own; it starts no children.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error { return cmd.Process.Kill() }
		cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
		v.termios = saveTerminal()
		logFile.Close()
		close(v.con.done)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if stdout, err = cmd.StdoutPipe(); err != nil {
			cancel()
			logFile.Close()
			return nil, err
		}
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	v.cmd = cmd
	v.started = time.Now()
	v.resetAt = v.started
	if stdout != nil {
		go v.con.run(stdout, logFile, cfg.Console)
	}
	go func() {
		err := cmd.Wait()
		v.exitErr = err
		close(v.exited)
		cancel()
	}()
	v.log.Info("e2e: qemu started", "pid", cmd.Process.Pid, "accel", cfg.Accel, "workdir", cfg.WorkDir)

	if err := v.connect(lifeCtx, ctlSock, qmpSock); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func (cfg *Config) defaults() error {
	if cfg.Appliance == nil || cfg.WorkDir == "" {
		return errors.New("e2e: Config needs an Appliance and a WorkDir")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 2048
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.Accel == "" {
		cfg.Accel = os.Getenv("AEGISBPF_VM_ACCEL")
	}
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// qemuArgs is the qemu command line. The root disk is read-only to qemu
// as well, so several VMs can share one root.erofs. The /var disk uses
// cache=unsafe: the host never crashes during a test, and a guest reset
// sees exactly the writes that reached the virtual disk either way, while
// host fsyncs would cost seconds.
func qemuArgs(cfg Config, varDisk, ctlSock, qmpSock string) []string {
	a := cfg.Appliance
	cmdline := strings.TrimSpace(a.Cmdline + " " + cfg.ExtraCmdline)
	serial := "stdio"
	if cfg.Interactive {
		serial = "mon:stdio"
	}
	// TCG runs single-threaded, as in tests/vm: with one thread per vCPU a
	// vCPU can run a stale translation of kernel text that another is
	// live-patching while BPF trampolines attach; seen here as CPUs stuck at
	// bpf_lsm_mmap_file+0 when the agent re-attached after a watchdog kill.
	accel := cfg.Accel
	if accel == "tcg" {
		accel = "tcg,thread=single"
	}
	var net []string
	if cfg.UserNet {
		// restrict=off: with restrict=on slirp drops the guest's packets
		// to the host too, UserNetHost included.
		net = []string{"-netdev", "user,id=n0,restrict=off", "-device", "virtio-net-pci,netdev=n0,mac=" + UserNetMAC}
	}
	return append([]string{
		"-accel", accel, "-cpu", "max", "-smp", fmt.Sprint(cfg.CPUs), "-m", fmt.Sprint(cfg.MemoryMB),
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", serial,
		"-kernel", a.Path(a.Kernel), "-initrd", a.Path(a.Initrd), "-append", cmdline,
		"-drive", "file=" + a.Path(a.Root) + ",if=virtio,format=raw,readonly=on",
		"-drive", "file=" + varDisk + ",if=virtio,format=raw,cache=unsafe",
		"-device", "virtio-rng-pci",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=ctl,path=" + ctlSock + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=ctl,name=" + portName,
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
	}, net...)
}

// UpUserNet brings up the guest's Config.UserNet interface with
// UserNetGuest, waiting up to limit for udev to load virtio_net and
// name it, and returns the interface's name. UserNetHost is on its
// subnet, so no route is needed; there is no default route and no DNS.
func (v *VM) UpUserNet(ctx context.Context, limit time.Duration) (string, error) {
	if !v.cfg.UserNet {
		return "", errors.New("e2e: UpUserNet on a VM started without Config.UserNet")
	}
	script := fmt.Sprintf(`end=$(($(date +%%s) + %d))
while :; do
	for d in /sys/class/net/*; do
		[ "$(cat "$d/address")" = %s ] && dev=${d##*/}
	done
	[ -n "${dev:-}" ] && break
	[ "$(date +%%s)" -lt "$end" ] || { echo "no interface with MAC %[2]s; have: $(ls /sys/class/net)" >&2; exit 1; }
	sleep 0.2
done
ip link set dev "$dev" up && ip addr replace %s dev "$dev" && echo "$dev"`, int(limit.Seconds()+0.5), UserNetMAC, UserNetGuest)
	out, err := v.Run(ctx, script)
	if err != nil {
		return "", fmt.Errorf("configuring the user network: %w", err)
	}
	return strings.TrimSpace(out), nil
}

// connect dials the control and QMP sockets qemu is creating.
func (v *VM) connect(ctx context.Context, ctlSock, qmpSock string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	qconn, err := v.dial(ctx, qmpSock)
	if err != nil {
		return err
	}
	q, err := newQMP(qconn, v.onEvent)
	if err != nil {
		qconn.Close()
		return err
	}
	v.qmp = q
	cconn, err := v.dial(ctx, ctlSock)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.ch = newChannel(cconn)
	v.mu.Unlock()
	return nil
}

func (v *VM) dial(ctx context.Context, sock string) (net.Conn, error) {
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err == nil {
			return conn, nil
		}
		select {
		case <-v.exited:
			return nil, fmt.Errorf("qemu exited before it opened %s: %v\n%s", filepath.Base(sock), v.exitErr, v.ConsoleTail(20))
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to %s: %w", sock, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// onEvent handles QMP events: a reset or the guest closing the control
// port ends every request in flight.
func (v *VM) onEvent(ev qmpEvent) {
	v.mu.Lock()
	ch := v.ch
	v.mu.Unlock()
	switch ev.Event {
	case "RESET":
		// The firmware resets the machine again itself right after a reset
		// (SeaBIOS); those follow within milliseconds and are one reset.
		v.mu.Lock()
		now := time.Now()
		if v.lastReset.IsZero() || now.Sub(v.lastReset) > resetBurst {
			v.resets++
			v.resetAt = now
		}
		v.lastReset = now
		v.mu.Unlock()
		v.log.Info("e2e: guest reset", "data", string(ev.Data))
		if ch != nil {
			ch.failPending(fmt.Errorf("%w: the guest was reset", ErrGuestGone))
		}
	case "SHUTDOWN":
		v.log.Info("e2e: guest shut down", "data", string(ev.Data))
	case "VSERPORT_CHANGE":
		var d struct {
			Open bool `json:"open"`
		}
		json.Unmarshal(ev.Data, &d)
		v.mu.Lock()
		v.portOpen = d.Open
		v.mu.Unlock()
		if !d.Open && ch != nil {
			ch.failPending(fmt.Errorf("%w: the guest agent closed the control port (reboot, shutdown or agent restart)", ErrGuestGone))
		}
	}
}

// Close kills qemu if it still runs and waits for it. It is safe to call
// more than once and from any goroutine.
func (v *VM) Close() error {
	v.once.Do(func() {
		v.cancel() // kills the process group through cmd.Cancel
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			// cmd.WaitDelay has fired long before this; be loud.
			v.log.Error("e2e: qemu did not exit after SIGKILL", "pid", v.cmd.Process.Pid)
		}
		v.mu.Lock()
		ch := v.ch
		v.mu.Unlock()
		if ch != nil {
			ch.close()
		}
		if v.qmp != nil {
			v.qmp.close()
		}
		<-v.con.done
		restoreTerminal(v.termios)
	})
	return nil
}

// Wait waits until qemu exits (the guest powered off, or Close) or ctx
// ends, and returns qemu's exit error.
func (v *VM) Wait(ctx context.Context) error {
	select {
	case <-v.exited:
		return v.exitErr
	case <-ctx.Done():
		return fmt.Errorf("waiting for qemu to exit: %w", ctx.Err())
	}
}

// Exited reports whether qemu has exited.
func (v *VM) Exited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

// VarImage is the /var disk this VM boots with.
func (v *VM) VarImage() string { return v.varDisk }

// ConsolePath is the file the serial console is copied to.
func (v *VM) ConsolePath() string { return filepath.Join(v.cfg.WorkDir, "console.log") }

// ConsoleTail returns the last n lines of the serial console.
func (v *VM) ConsoleTail(n int) string { return v.con.lastLines(n) }

// Resets is how many times the guest has reset (reboots included) since
// qemu started.
func (v *VM) Resets() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.resets
}
