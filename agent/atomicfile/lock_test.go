package atomicfile

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "l")
	unlock, err := Lock(t.Context(), p, time.Second, "slot command")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(t.Context(), p, 200*time.Millisecond, "slot command")
	if err == nil || !strings.Contains(err.Error(), "another slot command holds") {
		t.Errorf("second lock: %v", err)
	}
	unlock()
	unlock2, err := Lock(t.Context(), p, time.Second, "slot command")
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}
