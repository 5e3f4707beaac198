package policy

import (
	"fmt"
	"strings"
	"testing"
)

// TestCapacity checks that each limit is enforced exactly: at the limit the
// policy is valid; one entry beyond it, that entry is reported.
func TestCapacity(t *testing.T) {
	if testing.Short() {
		t.Skip("large policies")
	}
	tests := []struct {
		name  string
		limit int
		per   int // entries per rule
		// rule opens rule n; the entries follow as the array of its last key.
		rule  string
		entry func(n int) string
		msg   string
	}{
		{"file targets", MaxFileTargets, 1024, "[[file]]\nid = \"r%d\"\ninodes = [", func(n int) string { return fmt.Sprintf("%q", fmt.Sprintf("8:1:%d", n+1)) },
			"too many file rule targets: this is number 262145, the limit is 262144 (cover files with subtrees instead)"},
		{"exec targets", MaxExecTargets, 1024, "[[exec]]\nid = \"r%d\"\npaths = [", func(n int) string { return fmt.Sprintf("\"/opt/%d\"", n) },
			"too many exec rule targets: this is number 65537, the limit is 65536 (cover files with subtrees instead)"},
		{"IPv4 CIDRs", MaxCIDRsPerFamily, 1024, "[[network]]\nid = \"r%d\"\ncidrs = [", func(n int) string { return fmt.Sprintf("\"%d.%d.%d.0/24\"", 10+n>>16, n>>8&0xff, n&0xff) },
			"too many IPv4 CIDRs: this is number 65537, the limit is 65536 (aggregate them into shorter prefixes)"},
		{"IPv6 CIDRs", MaxCIDRsPerFamily, 1024, "[[network]]\nid = \"r%d\"\ncidrs = [", func(n int) string { return fmt.Sprintf("\"2001:db8:%x:%x::/64\"", n>>16, n&0xffff) },
			"too many IPv6 CIDRs: this is number 65537, the limit is 65536 (aggregate them into shorter prefixes)"},
		{"cgroups", MaxCgroups, 64, "[[exec]]\nid = \"r%d\"\npaths = [\"/opt/x\"]\ncgroups = [", func(n int) string { return fmt.Sprintf("\"/c%d\"", n) },
			"too many distinct cgroups: this is number 1025, the limit is 1024 (scope rules by parent cgroups)"},
		{"protect rules", MaxProtectRules, 1, "[[protect]]\nid = \"r%d\"\nkind = \"ptrace\"\nexempt_cgroups = [", func(n int) string { return "" },
			"too many protect rules: this is number 1025, the limit is 1024 (merge their scopes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString(head)
			n := 0
			for r := 0; n < tt.limit; r++ {
				fmt.Fprintf(&b, tt.rule, r)
				for k := 0; k < tt.per && n < tt.limit; k++ {
					if k > 0 {
						b.WriteString(", ")
					}
					b.WriteString(tt.entry(n))
					n++
				}
				b.WriteString("]\n")
			}
			if got := problemsOf(t, b.String()); got != nil {
				t.Fatalf("at the limit: %v", got[0])
			}
			// One more rule with one entry, on a line of its own.
			fmt.Fprintf(&b, tt.rule, -1)
			lastRule := strings.Count(b.String(), "\n") + 1
			b.WriteString(tt.entry(n) + "]\n")
			want := fmt.Sprintf("t.toml:%d:%d: %s", lastRule, len(tt.rule[strings.LastIndex(tt.rule, "\n")+1:])+1, tt.msg)
			if tt.entry(n) == "" { // a protect rule: reported at its header
				want = fmt.Sprintf("t.toml:%d:1: %s", lastRule-3, tt.msg)
			}
			if got := problemsOf(t, strings.Replace(b.String(), "id = \"r-1\"", "id = \"last\"", 1)); len(got) != 1 || got[0] != want {
				t.Errorf("over the limit:\n%v\nwant:\n%s", got, want)
			}
		})
	}
}
