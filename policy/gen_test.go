package policy

import (
	"fmt"
	"strings"
)

// genPolicy returns a policy of n rules of every kind, in a fixed mix:
// exact paths, subtrees, dev:inode, exec, IPv4 and IPv6 CIDRs with ports,
// scoped rules and mode overrides.
func genPolicy(n int) []byte {
	var b strings.Builder
	b.Grow(n * 90)
	b.WriteString("version = 1\nname = \"generated\"\nmode = \"enforce\"\nserial = 7\n")
	for i := range n {
		switch i % 10 {
		case 0, 1, 2:
			fmt.Fprintf(&b, "[[file]]\nid = \"f%07d\"\npaths = [\"/srv/data/%d/secret\"]\naccess = \"read\"\n", i, i)
		case 3:
			fmt.Fprintf(&b, "[[file]]\nid = \"s%07d\"\nsubtrees = [\"/srv/tree/%d\"]\ncgroups = [\"/kubepods.slice/pod%d\"]\n", i, i, i%500)
		case 4:
			fmt.Fprintf(&b, "[[file]]\nid = \"i%07d\"\ninodes = [\"259:1:%d\"]\nmode = \"audit\"\n", i, i+100)
		case 5, 6:
			fmt.Fprintf(&b, "[[exec]]\nid = \"x%07d\"\npaths = [\"/opt/tools/%d/bin\"]\n", i, i)
		case 7:
			fmt.Fprintf(&b, "[[network]]\nid = \"n%07d\"\ncidrs = [\"10.%d.%d.0/24\"]\nports = [443, \"8000-8999\"]\nprotocol = \"tcp\"\n",
				i, i>>16&0xff, i>>8&0xff)
		case 8:
			fmt.Fprintf(&b, "[[network]]\nid = \"m%07d\"\ncidrs = [\"2001:db8:%x:%x::/64\"]\n", i, i>>16, i&0xffff)
		case 9:
			if i < 100 {
				fmt.Fprintf(&b, "[[protect]]\nid = \"p%07d\"\nkind = \"ptrace\"\nexempt_cgroups = [\"/system.slice/debug%d.service\"]\n", i, i)
			} else {
				fmt.Fprintf(&b, "[[file]]\nid = \"w%07d\"\npaths = [\"/etc/app/%d.conf\"]\naccess = \"write\"\n", i, i)
			}
		}
	}
	return []byte(b.String())
}
