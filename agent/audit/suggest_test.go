package audit

import (
	"errors"
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/policy"
)

func TestSuggestGolden(t *testing.T) {
	r := testReport(t)
	golden(t, "suggest.toml", Suggest(r))

	out, err := SuggestPolicy(r, "policy.toml", readTestdata(t, "policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "suggest-policy.toml", out)
	// What `aegisbpf policy check` runs.
	p, err := policy.Parse("suggest-policy.toml", out)
	if err != nil {
		t.Fatalf("the suggested policy does not validate:\n%v", err)
	}
	want := map[string][]string{
		"protect-shadow": {"/system.slice/ssh.service", "/system.slice/system-getty.slice",
			"/user.slice/user-0.slice/user@0.service", "/user.slice/user-1000.slice/session-3.scope"},
		"no-exec-scratch":   {"/system.slice/ci-runner.service"},
		"no-cloud-metadata": {"/system.slice/cloud-init.service", "/system.slice/google-guest-agent.service"},
		"protect-secrets":   {"/system.slice/app.service/backup"},
		"no-module-load":    nil,
		"protect-agent":     nil,
	}
	for _, rule := range policy.Compile(p).Rules {
		if got, w := strings.Join(rule.ExemptCgroups, " "), strings.Join(want[rule.ID], " "); got != w {
			t.Errorf("rule %s exempts %q, want %q", rule.ID, got, w)
		}
	}
}

func TestSuggestSnippetParses(t *testing.T) {
	// The snippet is not a policy (its tables lack targets) but it is TOML
	// with the policy's keys: each table's exempt_cgroups validates once
	// merged into a rule.
	r := testReport(t)
	snippet := string(Suggest(r))
	src := "version = 1\nmode = \"audit\"\nserial = 1\n" +
		strings.NewReplacer("id = \"protect-shadow\"", "id = \"protect-shadow\"\npaths = [\"/etc/shadow\"]",
			"id = \"no-exec-scratch\"", "id = \"no-exec-scratch\"\nsubtrees = [\"/tmp\"]",
			"id = \"no-cloud-metadata\"", "id = \"no-cloud-metadata\"\ncidrs = [\"169.254.169.254/32\"]",
			"id = \"protect-secrets\"", "id = \"protect-secrets\"\nsubtrees = [\"/var/lib/secrets\"]",
			"id = \"old-rule\"", "id = \"old-rule\"\npaths = [\"/etc/motd\"]").Replace(snippet)
	if _, err := policy.Parse("snippet.toml", []byte(src)); err != nil {
		t.Fatalf("snippet with targets added does not validate:\n%v\n%s", err, src)
	}
}

func TestSuggestPolicyEdits(t *testing.T) {
	r := &Report{Source: "test", Rules: []RuleReport{{
		Rule: "r", WouldBlock: 3, Hooks: []string{"file_open"},
		Cgroups: []CgroupGroup{{Cgroup: Cgroup{ID: 5, Path: "/system.slice/a.service", State: CgroupResolved}, Count: 3,
			Binaries: []Group{{Name: "a", Count: 3}}}},
	}}}
	head := "version = 1\nmode = \"audit\"\nserial = 1\n\n[[file]]\nid = \"r\"\npaths = [\"/x\"]\n"
	for _, tc := range []struct {
		name, rule string
		want       string // the rule's text after the edit, from its paths line
	}{
		{"no key", "", "paths = [\"/x\"]\n# audit suggest, rule r: 3 would-block events (1 exemption added)\nexempt_cgroups = [\n  \"/system.slice/a.service\", # 3 events: a 3\n]\n"},
		{"no newline at the end", "exempt_cgroups = []",
			"paths = [\"/x\"]\nexempt_cgroups = [\n  \"/system.slice/a.service\", # 3 events: a 3\n]\n# audit suggest, rule r: 3 would-block events (1 exemption added)\n"},
		{"one line", "exempt_cgroups = [\"/b\", '/c'] # kept\n",
			"paths = [\"/x\"]\nexempt_cgroups = [\n  \"/b\",\n  '/c',\n  \"/system.slice/a.service\", # 3 events: a 3\n] # kept\n# audit suggest, rule r: 3 would-block events (1 exemption added)\n"},
		{"lines, no trailing comma", "exempt_cgroups = [\n    \"/b\", # b\n    \"/c\" # c, [not] an element\n]\n",
			"paths = [\"/x\"]\nexempt_cgroups = [\n    \"/b\", # b\n    \"/c\", # c, [not] an element\n    \"/system.slice/a.service\", # 3 events: a 3\n]\n# audit suggest, rule r: 3 would-block events (1 exemption added)\n"},
		{"bracket after the last element", "exempt_cgroups = [\n  \"/b\",\n  \"/c\"]\n",
			"paths = [\"/x\"]\nexempt_cgroups = [\n  \"/b\",\n  \"/c\",\n  \"/system.slice/a.service\", # 3 events: a 3\n]\n# audit suggest, rule r: 3 would-block events (1 exemption added)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := head + tc.rule
			out, err := SuggestPolicy(r, "p.toml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			s := string(out)
			got := s[strings.Index(s, "paths = "):]
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			if _, err := policy.Parse("p.toml", out); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSuggestPolicyRefusesInvalid(t *testing.T) {
	_, err := SuggestPolicy(testReport(t), "bad.toml", []byte("version = 1\nmode = \"audit\"\n"))
	var probs policy.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("want policy problems, got %v", err)
	}
}

func TestSuggestNotAppliedInlineRule(t *testing.T) {
	r := testReport(t)
	src := "version = 1\nmode = \"audit\"\nserial = 1\nfile = [{id = \"protect-shadow\", paths = [\"/etc/shadow\"]}]\n"
	out, err := SuggestPolicy(r, "inline.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "# rule protect-shadow is not written as a [[file]] table in inline.toml") ||
		!strings.HasSuffix(string(out), src) {
		t.Errorf("got:\n%s", out)
	}
}

func TestPlanRule(t *testing.T) {
	cg := func(id uint64, p string) CgroupGroup {
		return CgroupGroup{Cgroup: Cgroup{ID: id, Path: p, State: CgroupResolved}, Count: id, Binaries: []Group{{Name: "b", Count: id}}}
	}
	rr := &RuleReport{Rule: "r", Cgroups: []CgroupGroup{
		cg(1, "/a"), cg(2, "/a-b"), cg(3, "/a/b"), cg(4, "/scope"), cg(5, "/old/x"), cg(6, "/bad\x01name"),
	}}
	p := planRule(rr, []string{"/scope"}, []string{"/old"})
	var adds, skips []string
	for _, e := range p.add {
		adds = append(adds, e.path+" "+strings.Join(e.covers, ","))
	}
	for _, s := range p.skip {
		skips = append(skips, s.cgroup+": "+s.reason)
	}
	if got, want := strings.Join(adds, "; "), "/a /a/b; /a-b "; got != want {
		t.Errorf("adds %q, want %q", got, want)
	}
	if p.add[0].count != 4 {
		t.Errorf("/a covers /a/b: count %d, want 4", p.add[0].count)
	}
	for i, want := range []string{"turn the rule off in its scope", "already exempt by \"/old\"", "not valid in a policy"} {
		if i >= len(skips) || !strings.Contains(skips[i], want) {
			t.Errorf("skip %d: %q, want it to say %q", i, skips, want)
		}
	}
}
