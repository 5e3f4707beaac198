package e2e

import (
	"testing"
	"time"
)

// KitT makes a Kit in a temporary directory of t.
func KitT(t *testing.T) *Kit {
	t.Helper()
	k, err := NewKit(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// LayerT builds rel with k.
func LayerT(t *testing.T, k *Kit, rel Release) string {
	t.Helper()
	t0 := time.Now()
	dir, err := k.Layer(t.Context(), rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("layer %s (serial %d) built in %s", rel.Version, rel.Serial, time.Since(t0).Round(time.Millisecond))
	return dir
}

// SlottedVM builds the slotted appliance of c and boots it.
func SlottedVM(t *testing.T, k *Kit, c SlottedConfig) *VM {
	t.Helper()
	cfg, err := k.ApplianceConfig(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	a := BuildT(t, cfg)
	return StartT(t, a, Config{})
}
