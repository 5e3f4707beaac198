package proc

import (
	"os"
	"testing"
)

func TestSelf(t *testing.T) {
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	if cpu, err := CPU(os.Getpid()); err != nil || cpu <= 0 {
		t.Errorf("CPU = %v, %v; want a positive time (%d)", cpu, err, x)
	}
	if rss, err := Status(os.Getpid(), "VmRSS"); err != nil || rss < 1<<20 {
		t.Errorf("VmRSS = %d, %v; want at least 1 MiB", rss, err)
	}
	if _, err := Status(os.Getpid(), "NoSuchKey"); err == nil {
		t.Error("a missing key read without error")
	}
}
