package testenv

import (
	"bytes"
	"os"
	"testing"
)

// Golden compares got with the golden file at path, or rewrites the file
// when update is set (each package's -update flag).
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it if intended); got:\n%s", path, got)
	}
}
