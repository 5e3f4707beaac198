package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// attachTries bounds the retries when another process takes the free loop
// device between LOOP_CTL_GET_FREE and LOOP_CONFIGURE.
const attachTries = 16

// Device is an attached loop device. It stays attached while the Device is
// open or the kernel holds it (a device-mapper target on top of it, a
// mount); after both are gone the kernel detaches it (LO_FLAGS_AUTOCLEAR).
// A Device is not safe for concurrent Close.
type Device struct {
	// Path is the block device, e.g. /dev/loop3.
	Path string
	f    *os.File
}

// Attach binds the file at path read-only to a free loop device.
func Attach(path string) (*Device, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("attaching %s to a loop device: %w", path, err)
	}
	backing, err := os.OpenFile(abs, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("attaching %s to a loop device: %w", path, err)
	}
	defer backing.Close() // the kernel holds its own reference once attached
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("attaching %s to a loop device: opening the loop control device (is the loop module loaded?): %w", path, err)
	}
	defer ctl.Close()

	var lastErr error
	for range attachTries {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("attaching %s to a loop device: LOOP_CTL_GET_FREE: %w", path, err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("attaching %s to a loop device: opening %s: %w", path, dev, err)
		}
		err = configure(int(f.Fd()), int(backing.Fd()), abs)
		if err == nil {
			return &Device{Path: dev, f: f}, nil
		}
		f.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("attaching %s to %s: %w", path, dev, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("attaching %s to a loop device: every free device was taken by another process %d times: %w",
		path, attachTries, lastErr)
}

func configure(loopFd, backingFd int, name string) error {
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}
	copy(info.File_name[:len(info.File_name)-1], name)
	err := unix.IoctlLoopConfigure(loopFd, &unix.LoopConfig{Fd: uint32(backingFd), Info: info})
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("LOOP_CONFIGURE: %w", err)
	}
	// Kernels before 5.8: attach, then set the flags. The device is
	// read-only because the backing file is open read-only.
	if err := unix.IoctlSetInt(loopFd, unix.LOOP_SET_FD, backingFd); err != nil {
		return fmt.Errorf("LOOP_SET_FD: %w", err)
	}
	if err := unix.IoctlLoopSetStatus64(loopFd, &info); err != nil {
		unix.IoctlSetInt(loopFd, unix.LOOP_CLR_FD, 0)
		return fmt.Errorf("LOOP_SET_STATUS64: %w", err)
	}
	return nil
}

// Close releases this process's hold on the device. The kernel detaches it
// now, or when the last device-mapper target or mount on it goes away.
func (d *Device) Close() error {
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", d.Path, err)
	}
	return nil
}
