package update

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPositionUniform assigns a million synthetic machine ids and checks
// that each wave's fraction of the fleet gets its share, within 0.5
// percentage points, for two releases, and that the canaries of one
// release are not those of the next.
func TestPositionUniform(t *testing.T) {
	const n = 1_000_000
	fractions := []float64{0.05, 0.25, 0.5, 1}
	pos := make([]float64, n)
	for _, version := range []string{"1.0.0", "1.1.0"} {
		counts := make([]int, len(fractions))
		for i := range n {
			id := fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15)
			p := Position(id, version)
			if p < 0 || p >= 1 {
				t.Fatalf("Position(%s, %s) = %v, outside [0, 1)", id, version, p)
			}
			if version == "1.0.0" {
				pos[i] = p
			} else if pos[i] == p {
				t.Fatalf("machine %s has position %v for both releases", id, p)
			}
			for j, f := range fractions {
				if p < f {
					counts[j]++
				}
			}
		}
		for j, f := range fractions {
			got := float64(counts[j]) / n
			if math.Abs(got-f) > 0.005 {
				t.Errorf("release %s wave %g: %.5f of the fleet, more than 0.005 away", version, f, got)
			}
			t.Logf("release %s wave %g: %.5f of %d machines (%+.3f%% relative)", version, f, got, n, (got-f)/f*100)
		}
	}
	// Both releases' 5% canaries overlap like independent draws (0.25%).
	both := 0
	for i := range n {
		id := fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15)
		if pos[i] < 0.05 && Position(id, "1.1.0") < 0.05 {
			both++
		}
	}
	if got := float64(both) / n; math.Abs(got-0.0025) > 0.0005 {
		t.Errorf("%.5f of machines are canaries of both releases, want about 0.0025", got)
	}
}

// TestPositionStable pins one assignment: it must not change between
// builds, or hosts would change waves in the middle of a rollout.
func TestPositionStable(t *testing.T) {
	if got := Position("0123456789abcdef0123456789abcdef", "2.0.0"); got != 0.26900677548964413 {
		t.Fatalf("Position = %.17g, want 0.26900677548964413", got)
	}
}

func TestReadMachineID(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, err string }{
		{"good", "0123456789abcdef0123456789abcdef\n", ""},
		{"upper case", "0123456789ABCDEF0123456789ABCDEF\n", "is not a machine id"},
		{"empty", "", "is not a machine id"},
		{"uninitialized", "uninitialized\n", "is not a machine id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadMachineID(p)
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("ReadMachineID: %v, want %q", err, tc.err)
			}
		})
	}
}
