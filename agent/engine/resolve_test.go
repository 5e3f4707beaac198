package engine

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aegisbpf/aegisbpf/bpf"
	"github.com/aegisbpf/aegisbpf/policy"
)

// fakeFS maps paths to (dev, ino, mode); everything else is ENOENT.
type fakeFS map[string]unix.Stat_t

func (f fakeFS) Stat(p string, st *unix.Stat_t) error {
	s, ok := f[p]
	if !ok {
		return unix.ENOENT
	}
	*st = s
	return nil
}

func (f fakeFS) Lstat(p string, st *unix.Stat_t) error { return f.Stat(p, st) }

func dir(ino uint64) unix.Stat_t {
	return unix.Stat_t{Dev: unix.Mkdev(8, 1), Ino: ino, Mode: unix.S_IFDIR}
}
func file(ino uint64) unix.Stat_t {
	return unix.Stat_t{Dev: unix.Mkdev(8, 1), Ino: ino, Mode: unix.S_IFREG}
}

var kdev = uint32(8<<20 | 1)

func TestResolve(t *testing.T) {
	fs := fakeFS{
		"/":                           dir(2),
		"/etc":                        dir(10),
		"/etc/shadow":                 file(11),
		"/var":                        dir(20),
		"/var/lib":                    dir(21),
		"/var/lib/sec":                dir(22),
		"/tmp":                        dir(30),
		"/sys/fs/cgroup/system.slice": dir(500),
	}
	spec := Spec{
		Enforce: true,
		Rules: []RuleSpec{
			{ID: "shadow"}, {ID: "secrets", Audit: true}, {ID: "tmp-exec", Only: []string{"/system.slice"}, Except: []string{"/missing"}},
		},
		Targets: []Target{
			{Rule: 0, Path: "/etc/shadow", Access: AccessRead | AccessWrite},
			{Rule: 1, Path: "/var/lib/sec", Subtree: true, Access: AccessRead},
			{Rule: 2, Path: "/tmp", Subtree: true, Access: AccessExec},
			{Rule: 0, Path: "/etc/not-yet", Access: AccessRead},
		},
	}
	rs, err := Resolve(spec, fs)
	if err != nil {
		t.Fatal(err)
	}
	shadow := rs.Inodes[bpf.AegisInodeKey{Ino: 11, Dev: kdev}]
	if shadow.Self != [3]uint32{1, 1, 0} || shadow.Below != [3]uint32{} {
		t.Errorf("shadow ref = %+v", shadow)
	}
	sec := rs.Inodes[bpf.AegisInodeKey{Ino: 22, Dev: kdev}]
	if sec.Self != [3]uint32{2, 0, 0} || sec.Below != [3]uint32{2, 0, 0} {
		t.Errorf("subtree ref = %+v", sec)
	}
	if _, ok := rs.Names[bpf.AegisNameKey{ParentIno: 10, NameHash: NameHash("not-yet"), Dev: kdev}]; !ok {
		t.Error("a path that does not exist yet is not protected by name")
	}
	if _, ok := rs.Watched[bpf.AegisInodeKey{Ino: 10, Dev: kdev}]; !ok {
		t.Error("/etc is not watched")
	}
	for _, ino := range []uint64{10, 20, 21} {
		if _, ok := rs.Pinned[bpf.AegisInodeKey{Ino: ino, Dev: kdev}]; !ok {
			t.Errorf("ancestor inode %d not pinned", ino)
		}
	}
	if _, ok := rs.SubtreeDevs[kdev]; !ok {
		t.Error("subtree device not recorded")
	}
	r2 := rs.Rules[2]
	if r2.Scope != ScopeOnly|ScopeExcept || r2.ScopeID != 5 || r2.ExemptID != 6 {
		t.Errorf("scoped rule = %+v", r2)
	}
	// Scopes are keyed by path, whether the cgroup exists yet or not.
	want := []bpf.AegisScopeKey{{PathHash: NameHash("/system.slice"), ScopeId: 5}, {PathHash: NameHash("/missing"), ScopeId: 6}}
	if !slices.Equal(rs.Scopes, want) {
		t.Errorf("scopes = %+v, want %+v", rs.Scopes, want)
	}
}

func TestCgroupPathHash(t *testing.T) {
	deep := strings.Repeat("/a", MaxScopeDepth)
	long := "/" + strings.Repeat("n", MaxCgroupName)
	for _, ok := range []string{"/system.slice/ssh.service", deep, long, `/system.slice/system-serial\x2dgetty.slice`} {
		if h, err := CgroupPathHash(ok); err != nil || h != NameHash(ok) {
			t.Errorf("CgroupPathHash(%q) = %x, %v; want %x", ok, h, err, NameHash(ok))
		}
	}
	for path, want := range map[string]string{
		"/":            "not an absolute, clean path",
		"system.slice": "not an absolute, clean path",
		"/a//b":        "not an absolute, clean path",
		"/a/":          "not an absolute, clean path",
		deep + "/a":    "33 levels deep, scopes reach 32",
		long + "n":     "is 127 bytes, scopes match names of at most 126",
	} {
		if _, err := CgroupPathHash(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CgroupPathHash(%q) = %v, want %q", path, err, want)
		}
	}
}

func TestResolveEnforceBeatsAudit(t *testing.T) {
	fs := fakeFS{"/": dir(2), "/d": dir(3), "/d/f": file(4)}
	rs, err := Resolve(Spec{
		Rules:   []RuleSpec{{ID: "audit", Audit: true}, {ID: "enforce"}},
		Targets: []Target{{Rule: 0, Path: "/d/f", Access: AccessRead}, {Rule: 1, Path: "/d/f", Access: AccessRead}},
	}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Inodes[bpf.AegisInodeKey{Ino: 4, Dev: kdev}].Self[0]; got != 2 {
		t.Errorf("slot holds rule ref %d, want 2 (the enforcing rule)", got)
	}
}

func TestResolveErrors(t *testing.T) {
	fs := fakeFS{"/": dir(2), "/f": file(3)}
	tests := []struct {
		name string
		t    Target
		want string
	}{
		{"relative", Target{Path: "etc/x", Access: AccessRead}, "not absolute"},
		{"unclean", Target{Path: "/a/../f", Access: AccessRead}, "not absolute and clean"},
		{"no access", Target{Path: "/f"}, "no access kind"},
		{"subtree of file", Target{Path: "/f", Subtree: true, Access: AccessRead}, "not a directory"},
		{"nothing to hold", Target{Path: "/nope/x", Access: AccessRead}, "nothing to protect it by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(Spec{Rules: []RuleSpec{{ID: "r"}}, Targets: []Target{tt.t}}, fs)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "rule r") {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCheckCapacity(t *testing.T) {
	rs := newRuleSet()
	rs.Rules = make([]Rule, 3)
	e := &Engine{MaxEntries: 2}
	if err := e.CheckCapacity(rs); err == nil || !strings.Contains(err.Error(), "map rules needs 3 entries, capacity is 2") {
		t.Fatalf("got %v", err)
	}
	// Network prefixes count per map of one length.
	rs = newRuleSet()
	for _, p := range []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.0.0/16", "fd00::/64", "fd00:0:0:1::/64"} {
		rs.Nets[netip.MustParsePrefix(p)] = bpf.AegisNetRef{}
	}
	err := e.CheckCapacity(rs)
	if err == nil || !strings.Contains(err.Error(), "map net4_rules/24 needs 3 entries, capacity is 2") ||
		strings.Contains(err.Error(), "/16") || strings.Contains(err.Error(), "/64") {
		t.Fatalf("got %v", err)
	}
}

// TestFromPolicyExample compiles the shipped example policy and resolves it
// against this machine: every file and exec target becomes a target of its
// rule, network rules become network targets, the agent protection an agent
// target, and nothing is reported unsupported.
func TestFromPolicyExample(t *testing.T) {
	path := filepath.Join("..", "..", "policy", "examples", "hardened-host.toml")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(path, src)
	if err != nil {
		t.Fatal(err)
	}
	c := policy.Compile(p)
	spec, unsupported := FromPolicy(c)
	if len(spec.Rules) != len(c.Rules) {
		t.Fatalf("%d rules, want %d", len(spec.Rules), len(c.Rules))
	}
	if len(spec.Targets) != len(c.Files)+len(c.Execs) {
		t.Fatalf("%d targets, want %d", len(spec.Targets), len(c.Files)+len(c.Execs))
	}
	for _, tg := range spec.Targets {
		if c.Rules[tg.Rule].Kind == policy.KindExec && tg.Access != AccessExec {
			t.Errorf("exec target %s has access %v", tg.Path, tg.Access)
		}
	}
	if len(unsupported) != 0 {
		t.Errorf("unsupported rules %q, want none", unsupported)
	}
	if len(spec.Nets) != len(c.Net4)+len(c.Net6) || len(spec.Nets) == 0 {
		t.Errorf("%d network targets, want %d", len(spec.Nets), len(c.Net4)+len(c.Net6))
	}
	if len(spec.Agent) != 1 || len(spec.Agent[0].ExemptPIDs) == 0 {
		t.Errorf("agent targets %+v, want one with exempt PIDs", spec.Agent)
	}
}
