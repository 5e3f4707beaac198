package events

import (
	"time"

	"golang.org/x/sys/unix"
)

// BootClock returns CLOCK_BOOTTIME, the clock of the events' timestamps
// (bpf_ktime_get_boot_ns), as a duration since boot.
func BootClock() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BootOffset returns wall time minus boot time now: add it to an event's
// timestamp to get its wall-clock time.
func BootOffset(clock func() time.Duration) time.Duration {
	return time.Duration(time.Now().UnixNano()) - clock()
}
