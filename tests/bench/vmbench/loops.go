package vmbench

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The operations whose overhead is measured, and the calibration loops.
const (
	OpOpen    = "open"    // openat + close of an allowed file
	OpConnect = "connect" // socket + TCP connect on loopback + close (RST)
	OpExec    = "exec"    // fork + exec of a static binary + wait
)

// Ops lists the measured operations in report order.
var Ops = []string{OpOpen, OpConnect, OpExec}

// OpenClose times n openat+close pairs of path; it returns the time per
// pair.
func OpenClose(path string, n int) (time.Duration, error) {
	t0 := time.Now()
	for range n {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", path, err)
		}
		unix.Close(fd)
	}
	return time.Since(t0) / time.Duration(n), nil
}

// Listener accepts and closes TCP connections on 127.0.0.1 until Close.
type Listener struct {
	l    net.Listener
	Port int
}

// Listen starts a Listener on a free loopback port.
func Listen() (*Listener, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return &Listener{l: l, Port: l.Addr().(*net.TCPAddr).Port}, nil
}

// Close stops accepting.
func (l *Listener) Close() error { return l.l.Close() }

// Connect times n TCP connects to 127.0.0.1:port, each on a new socket
// closed with a reset (SO_LINGER 0), so that no TIME_WAIT state piles up.
func Connect(port, n int) (time.Duration, error) {
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	linger := &unix.Linger{Onoff: 1, Linger: 0}
	t0 := time.Now()
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("socket: %w", err)
		}
		err = unix.Connect(fd, sa)
		if err == nil {
			err = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, linger)
		}
		unix.Close(fd)
		if err != nil {
			return 0, fmt.Errorf("connect 127.0.0.1:%d: %w", port, err)
		}
	}
	return time.Since(t0) / time.Duration(n), nil
}

// ForkExec times n fork+exec+wait of argv (a static binary: no loader).
func ForkExec(argv []string, n int) (time.Duration, error) {
	attr := &syscall.ProcAttr{Env: []string{"PATH=/bin"}}
	t0 := time.Now()
	for range n {
		pid, err := syscall.ForkExec(argv[0], argv, attr)
		if err != nil {
			return 0, fmt.Errorf("exec %s: %w", argv[0], err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return 0, fmt.Errorf("wait %s: %w", argv[0], err)
		}
		if !ws.Exited() || ws.ExitStatus() != 0 {
			return 0, fmt.Errorf("%s: %v", argv[0], ws)
		}
	}
	return time.Since(t0) / time.Duration(n), nil
}

// CPULoopIterations is the fixed work of CPULoop.
const CPULoopIterations = 50_000_000

// CPULoop times a fixed integer loop (xorshift, no memory traffic): run
// on the host and in the guest, the ratio is TCG's slowdown of plain
// computation.
func CPULoop() time.Duration {
	x := uint64(88172645463325252)
	t0 := time.Now()
	for range CPULoopIterations {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	d := time.Since(t0)
	runtime.KeepAlive(x)
	return d
}

// Compute times a fixed mixed workload: filling and sorting a million
// pseudo-random integers, then 200k map inserts and 200k lookups: memory
// traffic and branches as in ordinary code, which TCG slows far more than
// CPULoop's register arithmetic.
func Compute() time.Duration {
	x := uint64(88172645463325252)
	next := func() uint64 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	t0 := time.Now()
	s := make([]uint32, 1<<20)
	for i := range s {
		s[i] = uint32(next())
	}
	slices.Sort(s)
	m := make(map[uint64]uint32, 1<<17)
	for i := range 200000 {
		m[next()%(1<<18)] = uint32(i)
	}
	hits := 0
	for range 200000 {
		if _, ok := m[next()%(1<<18)]; ok {
			hits++
		}
	}
	d := time.Since(t0)
	runtime.KeepAlive(hits)
	runtime.KeepAlive(s)
	return d
}

// SyscallLoop times n getppid calls: the ratio host to guest is TCG's
// slowdown of a kernel entry and exit.
func SyscallLoop(n int) time.Duration {
	t0 := time.Now()
	for range n {
		unix.Getppid()
	}
	return time.Since(t0) / time.Duration(n)
}

// Median returns the median of d (the mean of the middle two for an even
// count); zero when empty.
func Median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Calibrate runs the calibration loops three times each and returns their
// medians.
func Calibrate() *Calibration {
	var cpu, comp, sys []time.Duration
	for range 3 {
		cpu = append(cpu, CPULoop())
		comp = append(comp, Compute())
		sys = append(sys, SyscallLoop(200000))
	}
	return &Calibration{CPULoop: Median(cpu), Compute: Median(comp), Syscall: Median(sys)}
}
