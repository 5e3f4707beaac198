package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// head is the valid preamble of most cases: lines 1-3.
const head = "version = 1\nmode = \"enforce\"\nserial = 1\n"

// problemsOf parses src and returns its problems as strings.
func problemsOf(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("t.toml", []byte(src))
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error is %T, not Problems: %v", err, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// Syntax and the document.
		{"syntax error", "version = 1\nmode = \n",
			[]string{`t.toml:2:8: syntax error: expected value but found '\n' instead`}},
		{"duplicate key is a syntax error", head + "serial = 2\n",
			[]string{`t.toml:4:1: syntax error: key 'serial' has already been defined`}},
		{"nesting too deep", head + "name = " + strings.Repeat("[", 20) + strings.Repeat("]", 20) + "\n",
			[]string{`t.toml:4:24: arrays and inline tables nest deeper than 16 levels (a policy needs at most 3)`}},
		{"brackets in strings and comments do not nest", head + "name = \"" + strings.Repeat("[", 20) + "\" # {{{{{{{{{{{{{{{{{{{{\n" +
			"[[exec]]\nid = 'a'\npaths = [\"\"\"tmp/[[[[[[[[[[[[[[[[[[[[\"\"\"]\n",
			[]string{`t.toml:7:10: path "tmp/[[[[[[[[[[[[[[[[[[[[" is not absolute (write "/tmp/[[[[[[[[[[[[[[[[[[[[")`}},
		{"missing required keys", "name = \"x\"\n", []string{
			`t.toml:1:1: missing required key "mode" (add mode = "audit" or mode = "enforce")`,
			`t.toml:1:1: missing required key "serial" (add serial = N, a number you increase with every release of the policy)`,
			`t.toml:1:1: missing required key "version" (add version = 1)`,
		}},
		{"unknown top-level key", head + "moed = \"audit\"\n",
			[]string{`t.toml:4:1: unknown key "moed" (did you mean "mode"? known keys: version, name, mode, serial, file, exec, network, protect)`}},
		{"unknown table", head + "[protection]\nx = 1\n",
			[]string{`t.toml:4:1: unknown key "protection" (did you mean "protect"? known keys: version, name, mode, serial, file, exec, network, protect)`}},
		{"unsupported version", "version = 2\nmode = \"audit\"\nserial = 1\n",
			[]string{`t.toml:1:11: unsupported policy version 2 (this agent understands version = 1)`}},
		{"bad mode", "version = 1\nmode = \"enforcing\"\nserial = 1\n",
			[]string{`t.toml:2:8: mode "enforcing" is not valid (did you mean "enforce"?)`}},
		{"mode far from any", "version = 1\nmode = \"deny\"\nserial = 1\n",
			[]string{`t.toml:2:8: mode "deny" is not valid (use "audit" or "enforce")`}},
		{"serial quoted", "version = 1\nmode = \"audit\"\nserial = \"5\"\n",
			[]string{`t.toml:3:10: serial must be an integer, not a string "5" (remove the quotes: 5)`}},
		{"serial negative", "version = 1\nmode = \"audit\"\nserial = -1\n",
			[]string{`t.toml:3:10: serial must not be negative, got -1 (serials count up from 0)`}},
		{"serial float", "version = 1\nmode = \"audit\"\nserial = 1.5\n",
			[]string{`t.toml:3:10: serial must be an integer, not a float 1.5`}},
		{"name control character", head + "name = \"a\\tb\"\n",
			[]string{`t.toml:4:8: name contains a control character`}},
		{"rules not an array of tables", head + "file = \"x\"\n",
			[]string{`t.toml:4:8: file must be an array of tables, not a string "x" (start each rule with [[file]])`}},
		{"rules as a single table", head + "[exec]\nid = \"a\"\n",
			[]string{`t.toml:4:1: exec must be an array of tables, not a table (start each rule with [[exec]])`}},

		{"rule not a table", head + "file = [\"/etc/x\"]\n",
			[]string{`t.toml:4:9: file[0] must be a table, not a string "/etc/x" (start each rule with [[file]])`}},
		{"version float", "version = 1.0\nmode = \"audit\"\nserial = 1\n",
			[]string{`t.toml:1:11: version must be an integer, not a float 1`}},
		{"inline rules", head + "exec = [\n  {id = \"a\", paths = [\"/tmp/x\"]},\n  {paths = [\"/tmp/y\"], bogus = 1},\n]\n", []string{
			`t.toml:6:3: exec rule has no id (add id = "...", a stable name used in events and metrics)`,
			`t.toml:6:24: unknown key "bogus" (known keys: id, mode, force, cgroups, exempt_cgroups, paths, subtrees)`,
		}},
		{"BOM and CRLF", "\uFEFFversion = 1\r\nmode = \"audit\"\r\nserial = 1\r\n[[exec]]\r\nid = \"a\"\r\npaths = [\"tmp\"]\r\n",
			[]string{`t.toml:6:10: path "tmp" is not absolute (write "/tmp")`}},

		// Rule keys and types.
		{"missing id", head + "[[exec]]\npaths = [\"/tmp/x\"]\n",
			[]string{`t.toml:4:1: exec rule has no id (add id = "...", a stable name used in events and metrics)`}},
		{"bad id", head + "[[exec]]\nid = \"No_Caps\"\npaths = [\"/tmp/x\"]\n",
			[]string{`t.toml:5:6: id "No_Caps" is not valid (use a-z, 0-9, '.', '_' and '-', starting with a letter or digit)`}},
		{"id starting with a dash", head + "[[exec]]\nid = \"-a\"\npaths = [\"/tmp/x\"]\n",
			[]string{`t.toml:5:6: id "-a" is not valid (use a-z, 0-9, '.', '_' and '-', starting with a letter or digit)`}},
		{"empty id", head + "[[exec]]\nid = \"\"\npaths = [\"/tmp/x\"]\n",
			[]string{`t.toml:5:6: id is empty (use a-z, 0-9, '.', '_' and '-', starting with a letter or digit)`}},
		{"long id", head + "[[exec]]\nid = \"" + strings.Repeat("a", 65) + "\"\npaths = [\"/tmp/x\"]\n",
			[]string{`t.toml:5:6: id "` + strings.Repeat("a", 65) + `" is 65 bytes long, the limit is 64 (shorten it)`}},
		{"id as integer", head + "[[exec]]\nid = 7\npaths = [\"/tmp/x\"]\n",
			[]string{`t.toml:5:6: id must be a string, not an integer 7 (quote it: "7")`}},
		{"duplicate ids across kinds", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\n[[file]]\nid = \"a\"\npaths = [\"/etc/x\"]\n", []string{
			`t.toml:5:6: duplicate id "a" (also used at 8:6; ids are unique across all rules)`,
			`t.toml:8:6: duplicate id "a" (also used at 5:6; ids are unique across all rules)`,
		}},
		{"unknown rule key with suggestion", head + "[[file]]\nid = \"a\"\npath = [\"/etc/x\"]\n", []string{
			`t.toml:4:1: file rule "a" has no targets (add paths, subtrees or inodes)`,
			`t.toml:6:1: unknown key "path" (did you mean "paths"? known keys: id, mode, force, cgroups, exempt_cgroups, paths, subtrees, inodes, access)`,
		}[1:]},
		{"key of another kind", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\naccess = \"read\"\n",
			[]string{`t.toml:7:1: unknown key "access" (known keys: id, mode, force, cgroups, exempt_cgroups, paths, subtrees)`}},
		{"top-level key after a table", "version = 1\nserial = 1\n[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\nmode = \"enforce\"\n", []string{
			`t.toml:1:1: missing required key "mode" (add mode = "audit" or mode = "enforce")`,
			`t.toml:6:8: mode "" is not valid (use "audit" or "enforce")`,
		}[:1]},
		{"nested table in rule", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\"]\n[file.scope]\ncgroups = [\"/a\"]\n",
			[]string{`t.toml:7:1: unknown key "scope" (known keys: id, mode, force, cgroups, exempt_cgroups, paths, subtrees, inodes, access)`}},
		{"rule mode override invalid", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\nmode = \"adit\"\n",
			[]string{`t.toml:7:8: mode "adit" is not valid (did you mean "audit"?)`}},
		{"force as string", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\nforce = \"yes\"\n",
			[]string{`t.toml:7:9: force must be a boolean, not a string "yes" (write true or false, without quotes)`}},
		{"paths as string", head + "[[file]]\nid = \"a\"\npaths = \"/etc/x\"\n",
			[]string{`t.toml:6:9: paths must be an array of strings, not a string "/etc/x" (write paths = ["/etc/x"])`}},
		{"path element wrong type", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\", 5]\n",
			[]string{`t.toml:6:20: paths[1] must be a string, not an integer 5 (quote it: "5")`}},

		// Paths.
		{"relative path", head + "[[file]]\nid = \"a\"\npaths = [\"etc/shadow\"]\n",
			[]string{`t.toml:6:10: path "etc/shadow" is not absolute (write "/etc/shadow")`}},
		{"dot-dot", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/../shadow\"]\n",
			[]string{`t.toml:6:10: path "/etc/../shadow" is not canonical: it contains a ".." element (write "/shadow")`}},
		{"dot", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/./shadow\"]\n",
			[]string{`t.toml:6:10: path "/etc/./shadow" is not canonical: it contains a "." element (write "/etc/shadow")`}},
		{"double slash", head + "[[exec]]\nid = \"a\"\nsubtrees = [\"/tmp//x\"]\n",
			[]string{`t.toml:6:13: subtree "/tmp//x" is not canonical: it contains "//" (write "/tmp/x")`}},
		{"trailing slash on exact path", head + "[[file]]\nid = \"a\"\npaths = [\"/root/.ssh/\"]\n",
			[]string{`t.toml:6:10: path "/root/.ssh/" is not canonical: it ends with "/" (write "/root/.ssh"; to cover a directory and everything below it, use subtrees)`}},
		{"two trailing slashes on subtree", head + "[[file]]\nid = \"a\"\nsubtrees = [\"/root//\"]\n",
			[]string{`t.toml:6:13: subtree "/root//" is not canonical: it contains "//" (write "/root")`}},
		{"empty path", head + "[[file]]\nid = \"a\"\npaths = [\"\"]\n",
			[]string{`t.toml:6:10: path is empty`}},
		{"control character in path", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\\n\"]\n",
			[]string{`t.toml:6:10: path "/etc/x\n" contains a control character`}},
		{"long component", head + "[[file]]\nid = \"a\"\npaths = [\"/" + strings.Repeat("x", 256) + "\"]\n",
			[]string{`t.toml:6:10: path "/` + strings.Repeat("x", 256) + `" has a component of 256 bytes, the limit is 255`}},
		{"long cgroup name", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\"]\nexempt_cgroups = [\"/" + strings.Repeat("c", 127) + "\"]\n",
			[]string{`t.toml:7:19: cgroup "/` + strings.Repeat("c", 127) + `" has a component of 127 bytes, the limit is 126`}},
		{"deep cgroup", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\"]\ncgroups = [\"" + strings.Repeat("/c", 33) + "\"]\n",
			[]string{`t.toml:7:12: cgroup "` + strings.Repeat("/c", 33) + `" is 33 levels deep, the limit is 32`}},
		{"long path", head + "[[file]]\nid = \"a\"\npaths = [\"" + strings.Repeat("/xxxxxxx", 512) + "\"]\n",
			[]string{`t.toml:6:10: path is 4096 bytes long, the limit is 4095`}},
		{"duplicate path in a rule", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\",\n  \"/etc/x\"]\n",
			[]string{`t.toml:7:3: path "/etc/x" is listed twice (first at 6:10; remove one)`}},
		{"subtree duplicate after normalization", head + "[[file]]\nid = \"a\"\nsubtrees = [\"/srv\", \"/srv/\"]\n",
			[]string{`t.toml:6:21: subtree "/srv" is listed twice (first at 6:13; remove one)`}},
		{"no targets", head + "[[file]]\nid = \"a\"\npaths = []\n",
			[]string{`t.toml:4:1: file rule "a" has no targets (add paths, subtrees or inodes)`}},
		{"exec no targets", head + "[[exec]]\nid = \"a\"\n",
			[]string{`t.toml:4:1: exec rule "a" has no targets (add paths or subtrees)`}},
		{"bad access", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\"]\naccess = \"rw\"\n",
			[]string{`t.toml:7:10: access "rw" is not valid (use "read", "write" or "any")`}},
		{"access typo", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/x\"]\naccess = \"wirte\"\n",
			[]string{`t.toml:7:10: access "wirte" is not valid (did you mean "write"? use "read", "write" or "any")`}},

		// dev:inode.
		{"inode format", head + "[[file]]\nid = \"a\"\ninodes = [\"2049:1234\"]\n",
			[]string{`t.toml:6:11: inode "2049:1234" is not MAJOR:MINOR:INODE (write MAJOR:MINOR:INODE as printed by stat -c '%Hd:%Ld:%i', e.g. "259:1:1048577")`}},
		{"inode major", head + "[[file]]\nid = \"a\"\ninodes = [\"4096:0:5\"]\n",
			[]string{`t.toml:6:11: inode "4096:0:5" has major 4096, the largest is 4095 (write MAJOR:MINOR:INODE as printed by stat -c '%Hd:%Ld:%i', e.g. "259:1:1048577")`}},
		{"inode zero", head + "[[file]]\nid = \"a\"\ninodes = [\"8:1:0\"]\n",
			[]string{`t.toml:6:11: inode "8:1:0" has inode 0, which no file has (write MAJOR:MINOR:INODE as printed by stat -c '%Hd:%Ld:%i', e.g. "259:1:1048577")`}},

		// Network.
		{"host bits set", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.1.2.3/8\"]\n",
			[]string{`t.toml:6:10: CIDR "10.1.2.3/8" has host bits set (the network is "10.0.0.0/8"; write that, or "10.1.2.3/32" for the one address)`}},
		{"host bits set v6", head + "[[network]]\nid = \"a\"\ncidrs = [\"2001:db8::1/32\"]\n",
			[]string{`t.toml:6:10: CIDR "2001:db8::1/32" has host bits set (the network is "2001:db8::/32"; write that, or "2001:db8::1/128" for the one address)`}},
		{"no prefix length", head + "[[network]]\nid = \"a\"\ncidrs = [\"169.254.169.254\"]\n",
			[]string{`t.toml:6:10: CIDR "169.254.169.254" has no prefix length (write "169.254.169.254/32" for this one address)`}},
		{"prefix too long", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/33\"]\n",
			[]string{`t.toml:6:10: CIDR "10.0.0.0/33" has prefix length 33 (an IPv4 prefix length is at most 32)`}},
		{"prefix not a number", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/08\"]\n",
			[]string{`t.toml:6:10: CIDR "10.0.0.0/08" has an invalid prefix length (use a decimal number from 0 to 32)`}},
		{"not an address", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.256/32\"]\n",
			[]string{`t.toml:6:10: CIDR "10.0.0.256/32" is not an IP address with a prefix length (e.g. "192.0.2.0/24" or "2001:db8::/32")`}},
		{"zone", head + "[[network]]\nid = \"a\"\ncidrs = [\"fe80::%eth0/64\"]\n",
			[]string{`t.toml:6:10: CIDR "fe80::%eth0/64" has an IPv6 zone (remove the zone)`}},
		{"duplicate after mapping", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\", \"::ffff:10.0.0.0/104\"]\n",
			[]string{`t.toml:6:24: CIDR "::ffff:10.0.0.0/104" is listed twice (as 10.0.0.0/8) (first at 6:10; remove one)`}},
		{"no cidrs", head + "[[network]]\nid = \"a\"\nports = [22]\n",
			[]string{`t.toml:4:1: network rule "a" has no cidrs (add cidrs = ["..."]; use "0.0.0.0/0" and "::/0" to match every address)`}},
		{"port zero", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [0]\n",
			[]string{`t.toml:7:10: port 0 is not valid (ports are 1-65535; leave ports out to match every port)`}},
		{"port too large", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [65536]\n",
			[]string{`t.toml:7:10: port 65536 is out of range (ports are 1-65535)`}},
		{"port range reversed", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [\"9000-8000\"]\n",
			[]string{`t.toml:7:10: port range "9000-8000" is reversed (write "8000-9000")`}},
		{"port range bound", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [\"1-70000\"]\n",
			[]string{`t.toml:7:10: port range "1-70000" has port 70000, which is out of range (ports are 1-65535)`}},
		{"port range malformed", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [\"https\"]\n",
			[]string{`t.toml:7:10: port range "https" is not LO-HI (write "LO-HI", e.g. "8000-8999")`}},
		{"port quoted", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [\"443\"]\n",
			[]string{`t.toml:7:10: port range "443" is not LO-HI (write a single port without quotes: 443)`}},
		{"port wrong type", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [true]\n",
			[]string{`t.toml:7:10: ports[0] must be a port number or a "LO-HI" range, not a boolean true`}},
		{"too many port ranges", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nports = [" + portList(17) + "]\n",
			[]string{`t.toml:7:9: ports has 17 ranges after merging, the limit is 16 (use fewer, wider ranges or split the rule)`}},
		{"unknown protocol", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nprotocol = \"icmp\"\n",
			[]string{`t.toml:7:12: protocol "icmp" is not valid (use "tcp", "udp" or "any")`}},
		{"protocol typo", head + "[[network]]\nid = \"a\"\ncidrs = [\"10.0.0.0/8\"]\nprotocol = \"TCP\"\n",
			[]string{`t.toml:7:12: protocol "TCP" is not valid (did you mean "tcp"? use "tcp", "udp" or "any")`}},

		// Protections.
		{"protect without kind", head + "[[protect]]\nid = \"a\"\n",
			[]string{`t.toml:4:1: protect rule has no kind (add kind = "ptrace", "module_load" or "agent")`}},
		{"protect bad kind", head + "[[protect]]\nid = \"a\"\nkind = \"modules\"\n",
			[]string{`t.toml:6:8: kind "modules" is not valid (did you mean "module_load"? use "ptrace", "module_load" or "agent")`}},
		{"exempt_pids on ptrace", head + "[[protect]]\nid = \"a\"\nkind = \"ptrace\"\nexempt_pids = [1]\n",
			[]string{`t.toml:7:1: exempt_pids applies only to kind = "agent" (remove it, or use kind = "agent")`}},
		{"exempt_pids without 1", head + "[[protect]]\nid = \"a\"\nkind = \"agent\"\nexempt_pids = []\n",
			[]string{`t.toml:7:15: exempt_pids does not contain 1: systemd (PID 1) could not stop or restart the agent (add 1, or set force = true if you mean it)`}},
		{"pid out of range", head + "[[protect]]\nid = \"a\"\nkind = \"agent\"\nexempt_pids = [1, 0]\n",
			[]string{`t.toml:7:19: PID 0 is out of range (PIDs are 1-4194304)`}},
		{"pid twice", head + "[[protect]]\nid = \"a\"\nkind = \"agent\"\nexempt_pids = [1, 1]\n",
			[]string{`t.toml:7:19: PID 1 is listed twice (first at 7:16; remove one)`}},

		// Scope.
		{"relative cgroup", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\ncgroups = [\"system.slice\"]\n",
			[]string{`t.toml:7:12: cgroup "system.slice" is not absolute (write "/system.slice")`}},
		{"cgroup trailing slash", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\ncgroups = [\"/system.slice/\"]\n",
			[]string{`t.toml:7:12: cgroup "/system.slice/" is not canonical: it ends with "/" (write "/system.slice")`}},
		{"exempt root", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\nexempt_cgroups = [\"/\"]\n",
			[]string{`t.toml:7:19: exempt_cgroups holds "/", so the rule applies to no process (remove the rule, or exempt narrower cgroups)`}},
		{"exempt covers scope", head + "[[exec]]\nid = \"a\"\npaths = [\"/tmp/x\"]\ncgroups = [\"/a/b\"]\nexempt_cgroups = [\"/a\"]\n",
			[]string{`t.toml:8:19: exempt cgroup "/a" covers scoped cgroup "/a/b": the rule would never apply there (remove one of them)`}},

		// Host safety and force.
		{"deny read of the loader", head + "[[file]]\nid = \"a\"\npaths = [\"/lib64/ld-linux-x86-64.so.2\"]\naccess = \"read\"\n",
			[]string{`t.toml:6:10: denying read of "/lib64/ld-linux-x86-64.so.2" would break the host: it is the dynamic loader (set force = true on this rule if you mean it)`}},
		{"deny exec of init", head + "[[exec]]\nid = \"a\"\npaths = [\"/sbin/init\"]\n",
			[]string{`t.toml:6:10: denying exec of "/sbin/init" would break the host: it is PID 1's binary (set force = true on this rule if you mean it)`}},
		{"deny any of the agent via merged usr", head + "[[file]]\nid = \"a\"\npaths = [\"/bin/aegisbpf\"]\n",
			[]string{`t.toml:6:10: denying read of "/bin/aegisbpf" would break the host: it is the AegisBPF agent (set force = true on this rule if you mean it)`}},
		{"deny exec under /usr", head + "[[exec]]\nid = \"a\"\nsubtrees = [\"/usr\"]\n",
			[]string{`t.toml:6:13: denying exec under "/usr" would break the host: it holds "/usr/bin/aegisbpf", the AegisBPF agent (set force = true on this rule if you mean it)`}},
		{"deny read under /", head + "[[file]]\nid = \"a\"\nsubtrees = [\"/\"]\naccess = \"any\"\n",
			[]string{`t.toml:6:13: denying read under "/" would break the host: it holds "/sbin/init", PID 1's binary (set force = true on this rule if you mean it)`}},
		{"deny read of ld.so.cache", head + "[[file]]\nid = \"a\"\nsubtrees = [\"/etc\"]\naccess = \"read\"\n",
			[]string{`t.toml:6:13: denying read under "/etc" would break the host: it holds "/etc/ld.so.cache", the dynamic loader's cache (set force = true on this rule if you mean it)`}},
		{"needless force", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/shadow\"]\nforce = true\n",
			[]string{`t.toml:7:1: force = true is not needed: this rule denies nothing host-critical (remove it, so that force stays a deliberate exception)`}},
		{"force with write access only", head + "[[file]]\nid = \"a\"\npaths = [\"/etc/ld.so.cache\"]\naccess = \"write\"\nforce = true\n",
			[]string{`t.toml:8:1: force = true is not needed: this rule denies nothing host-critical (remove it, so that force stays a deliberate exception)`}},

		// Every problem at once.
		{"many problems", head + "[[network]]\nid = \"B\"\ncidrs = [\"10.0.0.1/8\"]\nports = [0]\nprotocol = \"sctp\"\n", []string{
			`t.toml:5:6: id "B" is not valid (use a-z, 0-9, '.', '_' and '-', starting with a letter or digit)`,
			`t.toml:6:10: CIDR "10.0.0.1/8" has host bits set (the network is "10.0.0.0/8"; write that, or "10.0.0.1/32" for the one address)`,
			`t.toml:7:10: port 0 is not valid (ports are 1-65535; leave ports out to match every port)`,
			`t.toml:8:12: protocol "sctp" is not valid (use "tcp", "udp" or "any")`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.src)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func portList(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprint(1 + 2*i)
	}
	return strings.Join(ps, ", ")
}
