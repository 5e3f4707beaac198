package e2e

import (
	"os"
	"syscall"
	"unsafe"
)

// saveTerminal returns the settings of the terminal on stdin, or nil when
// stdin is not a terminal. qemu puts the terminal in raw mode and restores
// it when it exits cleanly; restoreTerminal covers the SIGKILL paths.
func saveTerminal() *syscall.Termios {
	var t syscall.Termios
	if err := ioctl(os.Stdin.Fd(), syscall.TCGETS, &t); err != nil {
		return nil
	}
	return &t
}

func restoreTerminal(t *syscall.Termios) {
	if t != nil {
		ioctl(os.Stdin.Fd(), syscall.TCSETS, t)
	}
}

func ioctl(fd uintptr, req uintptr, t *syscall.Termios) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(t))); errno != 0 {
		return errno
	}
	return nil
}
