package bench

import "testing"

func TestCounts(t *testing.T) {
	got, err := Counts("rate", " 10, 1000 ,,5")
	if err != nil || len(got) != 3 || got[0] != 10 || got[1] != 1000 || got[2] != 5 {
		t.Errorf("Counts = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "-1", "ten", "10,x"} {
		if _, err := Counts("rate", bad); err == nil {
			t.Errorf("Counts(%q) accepted", bad)
		}
	}
}
