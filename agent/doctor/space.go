package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/slot"
)

// MinLayerBytes is the layer size assumed when no slot is installed yet: a
// layer today is about 15 MB (a 12 MB agent, compressed, and its hash tree).
const MinLayerBytes = 32 << 20

// MinYear is the earliest plausible year of the clock: signatures carry
// validity windows, and a clock before them refuses every policy.
const MinYear = 2025

// slotBytes is the size of the files in one slot directory.
func slotBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n, nil
}

// checkSlotSpace wants two layers of free space on the slots' file system.
// An install copies the new layer beside both slots before it replaces the
// idle one, so one layer free is the least that lets the next install work
// (FAIL below it); two fill both slots of a new host, or leave room for a
// larger next layer (WARN below them).
func (h *Host) checkSlotSpace() Result {
	const name = "slot-space"
	var layer int64
	installed := 0
	for _, s := range slot.Names {
		n, err := slotBytes(h.path(path.Join(h.SlotsDir, "slots", s)))
		if err == nil && n > 0 {
			installed++
			layer = max(layer, n)
		}
	}
	basis := fmt.Sprintf("the largest installed layer, %s", mib(layer))
	if installed == 0 {
		layer = MinLayerBytes
		basis = fmt.Sprintf("no slot installed yet: assuming a %s layer", mib(layer))
	}
	// The slots' directory may not exist before the first install: measure
	// the file system it will be on.
	at := h.SlotsDir
	for {
		if _, err := os.Stat(h.path(at)); err == nil || at == "/" || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		at = path.Dir(at)
	}
	free, err := h.FreeBytes(h.path(at))
	if err != nil {
		return fail(name, "check that "+at+" is on a mounted file system", "measuring free space for %s: %v", h.SlotsDir, err)
	}
	want := 2 * layer
	fix := fmt.Sprintf("free at least %s on the file system of %s (or grow it)", mib(want-int64(free)), h.SlotsDir)
	switch {
	case int64(free) < layer:
		return fail(name, fix, "%s free at %s, less than one layer (%s): the next 'aegisbpf slot install' cannot copy it", mib(int64(free)), at, basis)
	case int64(free) < want:
		return warn(name, fix, "%s free at %s: room for one more layer but not two (%s)", mib(int64(free)), at, basis)
	}
	return ok(name, "%s free at %s, room for two layers (%s)", mib(int64(free)), at, basis)
}

// mib formats a byte count in MiB, or GiB from 1 GiB.
func mib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func (h *Host) checkClock() Result {
	const name = "clock"
	now := h.Now().UTC()
	fix := "set the clock and keep it synchronized (timedatectl set-ntp true); policy signatures are checked against it"
	if now.Year() < MinYear {
		return fail(name, fix, "the clock says %s, before %d", now.Format(time.RFC3339), MinYear)
	}
	if !h.BuildTime.IsZero() && now.Before(h.BuildTime) {
		return fail(name, fix, "the clock says %s, before this agent was built (%s)", now.Format(time.RFC3339), h.BuildTime.UTC().Format(time.RFC3339))
	}
	built := "build time unknown"
	if !h.BuildTime.IsZero() {
		built = "after the build, " + h.BuildTime.UTC().Format(time.RFC3339)
	}
	return ok(name, "%s (%s)", now.Format(time.RFC3339), built)
}
