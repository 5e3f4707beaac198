package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aegisbpf/aegisbpf/agent/cli"
	"github.com/aegisbpf/aegisbpf/agent/engine"
	"github.com/aegisbpf/aegisbpf/agent/metrics"
)

const root = "../.."

// text is one file the tests read, with its lines.
type text struct {
	path  string // relative to the repository
	lines []string
}

func read(t *testing.T, rel string) text {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return text{path: rel, lines: strings.Split(string(b), "\n")}
}

// markdown returns README.md and every docs/**/*.md.
func markdown(t *testing.T) []text {
	t.Helper()
	files := []text{read(t, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".md") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, read(t, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// mention is a command line found in a file.
type mention struct {
	where string // file:line
	cmd   string
}

var (
	inlineCode = regexp.MustCompile("`([^`]+)`")
	quoted     = regexp.MustCompile(`'(aegisbpf [^']+)'`)
)

// commandLines finds the command lines in markdown: the lines of fenced
// code blocks (continuations joined, prompts stripped) and inline code.
func commandLines(f text) []mention {
	var out []mention
	inFence := false
	pending, pendingAt := "", ""
	for i, line := range f.lines {
		where := fmt.Sprintf("%s:%d", f.path, i+1)
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			if pending != "" {
				trimmed, where = pending+" "+trimmed, pendingAt
				pending = ""
			}
			if strings.HasSuffix(trimmed, `\`) {
				pending, pendingAt = strings.TrimSuffix(trimmed, `\`), where
				continue
			}
			out = append(out, mention{where, trimmed})
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
			out = append(out, mention{where, m[1]})
		}
	}
	return out
}

var prompts = []string{"# ", "$ ", "sudo ", "> "}

// program strips prompts and returns the words of a command line when it
// runs the aegisbpf binary, up to the first shell operator.
func program(line string) []string {
	for again := true; again; {
		again = false
		for _, p := range prompts {
			if strings.HasPrefix(line, p) {
				line, again = strings.TrimSpace(line[len(p):]), true
			}
		}
	}
	words := strings.Fields(line)
	if len(words) == 0 {
		return nil
	}
	switch words[0] {
	case "aegisbpf", "bin/aegisbpf", "./bin/aegisbpf", "/usr/bin/aegisbpf", "/usr/libexec/aegisbpf/aegisbpf":
	default:
		return nil
	}
	for i, w := range words {
		if w == "|" || w == "||" || w == "&&" || w == ";" || strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") || w == "#" {
			return words[:i]
		}
	}
	return words
}

// helpFlags returns the flags the verb at path prints in its --help.
func helpFlags(t *testing.T, path []string) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }}
	if code := cli.Main(context.Background(), env, append(slices.Clone(path), "--help")); code != 0 {
		t.Fatalf("aegisbpf %s --help exits %d:\n%s", strings.Join(path, " "), code, out.String())
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = true
	}
	return flags
}

var (
	flagWord = regexp.MustCompile(`^--?([a-z0-9][a-z0-9-]*)`)
	verbWord = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// checkCommand reports what of words is not a verb or flag of aegisbpf.
func checkCommand(t *testing.T, words []string, cache map[string]map[string]bool) []string {
	t.Helper()
	cmd := cli.Root()
	var path []string
	i := 1
	for ; i < len(words) && cmd.Run == nil; i++ {
		w := strings.Trim(words[i], "[]`'\".,:")
		if !verbWord.MatchString(w) && strings.ToUpper(w) != w {
			return nil // prose or a diagram, not a command line
		}
		var next *cli.Command
		for _, s := range cmd.Sub {
			if s.Name == w {
				next = s
			}
		}
		if next == nil {
			if w == "" || w == "--help" || w == "-h" || w == "..." || strings.ToUpper(w) == w || strings.ContainsAny(w, "|") {
				return nil // a placeholder for the verb, or alternatives: nothing more to check
			}
			return []string{fmt.Sprintf("unknown verb %q of 'aegisbpf %s'", w, strings.Join(path, " "))}
		}
		cmd, path = next, append(path, w)
	}
	if cmd.Run == nil {
		return nil // a group named on its own
	}
	key := strings.Join(path, " ")
	flags, ok := cache[key]
	if !ok {
		flags = helpFlags(t, path)
		cache[key] = flags
	}
	var bad []string
	for _, w := range words[i:] {
		for _, part := range strings.Split(strings.Trim(w, "[]()`'\".,:"), "|") {
			part = strings.Trim(part, "[]()")
			m := flagWord.FindStringSubmatch(part)
			if m == nil {
				continue
			}
			if !flags[m[1]] {
				bad = append(bad, fmt.Sprintf("'aegisbpf %s' has no flag -%s", key, m[1]))
			}
		}
	}
	return bad
}

// TestCommandsExist: every aegisbpf command line in the docs, the alert
// annotations, the fixes doctor prints and the units names verbs and flags
// the binary has.
func TestCommandsExist(t *testing.T) {
	var all []mention
	for _, f := range markdown(t) {
		all = append(all, commandLines(f)...)
	}
	sources, _ := filepath.Glob(filepath.Join(root, "agent", "doctor", "*.go"))
	quotedIn := []string{"docs/monitoring/alerts.yml"}
	for _, p := range sources {
		if !strings.HasSuffix(p, "_test.go") {
			rel, _ := filepath.Rel(root, p)
			quotedIn = append(quotedIn, rel)
		}
	}
	for _, rel := range quotedIn {
		f := read(t, rel)
		for i, line := range f.lines {
			for _, m := range quoted.FindAllStringSubmatch(line, -1) {
				all = append(all, mention{fmt.Sprintf("%s:%d", rel, i+1), m[1]})
			}
		}
	}
	units, _ := filepath.Glob(filepath.Join(root, "systemd", "*.service"))
	base, _ := filepath.Glob(filepath.Join(root, "systemd", "base", "*.service"))
	dropins, _ := filepath.Glob(filepath.Join(root, "systemd", "base", "*.d", "*.conf"))
	for _, p := range slices.Concat(units, base, dropins) {
		rel, _ := filepath.Rel(root, p)
		f := read(t, rel)
		for i, line := range f.lines {
			if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "Exec") {
				all = append(all, mention{fmt.Sprintf("%s:%d", rel, i+1), strings.TrimLeft(v, "+-@!:")})
			}
		}
	}
	cache := map[string]map[string]bool{}
	checked := 0
	for _, m := range all {
		words := program(m.cmd)
		if words == nil {
			continue
		}
		checked++
		for _, problem := range checkCommand(t, words, cache) {
			t.Errorf("%s: %s (in %q)", m.where, problem, m.cmd)
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d command lines: the extraction is broken", checked)
	}
	t.Logf("checked %d command lines, %d verbs", checked, len(cache))
}

// TestCheckCommandCatchesDrift: the checker itself finds a missing verb
// and a missing flag.
func TestCheckCommandCatchesDrift(t *testing.T) {
	cache := map[string]map[string]bool{}
	for line, want := range map[string]string{
		"aegisbpf slot status --json":               "",
		"# aegisbpf slot install [--as-good] DIR":   "",
		"aegisbpf slot frobnicate":                  `unknown verb "frobnicate"`,
		"aegisbpf slot status --yaml":               "has no flag -yaml",
		"aegisbpf doctor [--json|--colour]":         "has no flag -colour",
		"aegisbpf metrics | grep --count x":         "",
		"sudo aegisbpf slot rollback --reason TEXT": "",
	} {
		got := strings.Join(checkCommand(t, program(line), cache), "; ")
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("%q: problems %q, want %q", line, got, want)
		}
	}
}

// exported returns the metric families the registry can export.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names, err := metrics.NewRegistry(emptySource{}, metrics.BuildInfo{}).Names()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{"up": true}
	for _, n := range names {
		m[n] = true
	}
	return m
}

type emptySource struct{}

func (emptySource) Snapshot() metrics.Snapshot { return metrics.Snapshot{} }

var (
	aegisMetric = regexp.MustCompile(`\baegisbpf_[a-z][a-z0-9_]*`)
	anyMetric   = regexp.MustCompile(`\b(?:aegisbpf|go|process)_[a-z][a-z0-9_]*`)
)

// TestMetricNamesExist: the docs, the alert rules and the dashboard name
// only metrics the agent exports.
func TestMetricNamesExist(t *testing.T) {
	have := exported(t)
	for _, f := range markdown(t) {
		for i, line := range f.lines {
			for _, name := range aegisMetric.FindAllString(line, -1) {
				if !have[name] {
					t.Errorf("%s:%d: %s is not a metric the agent exports", f.path, i+1, name)
				}
			}
		}
	}
	alerts := read(t, "docs/monitoring/alerts.yml")
	exprs := 0
	inExpr := false
	for i, line := range alerts.lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "expr:"):
			inExpr, exprs = true, exprs+1
		case inExpr && (strings.HasPrefix(trimmed, "for:") || strings.HasPrefix(trimmed, "labels:")):
			inExpr = false
		}
		if !inExpr {
			continue
		}
		for _, name := range anyMetric.FindAllString(line, -1) {
			if !have[name] {
				t.Errorf("%s:%d: %s is not a metric the agent exports", alerts.path, i+1, name)
			}
		}
	}
	if exprs == 0 {
		t.Error("no expr in alerts.yml")
	}

	b, err := os.ReadFile(filepath.Join(root, "docs/monitoring/dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/monitoring/dashboard.json: %v", err)
	}
	var queries []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "expr" || k == "query") {
					queries = append(queries, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(dash)
	if len(queries) < 10 {
		t.Errorf("dashboard.json has %d queries", len(queries))
	}
	for _, q := range queries {
		for _, name := range anyMetric.FindAllString(q, -1) {
			if !have[name] {
				t.Errorf("dashboard.json: %s is not a metric the agent exports (in %q)", name, q)
			}
		}
	}
}

var (
	alertName    = regexp.MustCompile(`^\s*-\s*alert:\s*(\S+)`)
	testedAlert  = regexp.MustCompile(`^\s*alertname:\s*(\S+)`)
	ceilingInMap = regexp.MustCompile(`0\.8 \* (\d+)`)
)

// TestEveryAlertIsTested: each rule of alerts.yml has a promtool test, and
// the map ceiling the capacity alert uses is the engine's.
func TestEveryAlertIsTested(t *testing.T) {
	rules := map[string]bool{}
	for _, line := range read(t, "docs/monitoring/alerts.yml").lines {
		if m := alertName.FindStringSubmatch(line); m != nil {
			rules[m[1]] = true
		}
		if m := ceilingInMap.FindStringSubmatch(line); m != nil {
			if n, _ := strconv.Atoi(m[1]); n != engine.DefaultMaxEntries {
				t.Errorf("alerts.yml: the map ceiling is %d, engine.DefaultMaxEntries is %d", n, engine.DefaultMaxEntries)
			}
		}
	}
	tested := map[string]bool{}
	for _, line := range read(t, "docs/monitoring/alerts_test.yml").lines {
		if m := testedAlert.FindStringSubmatch(line); m != nil {
			tested[m[1]] = true
			if !rules[m[1]] {
				t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", m[1])
			}
		}
	}
	if len(rules) < 10 {
		t.Fatalf("found %d alert rules", len(rules))
	}
	for r := range rules {
		if !tested[r] {
			t.Errorf("alert %s has no test in alerts_test.yml", r)
		}
	}
}

var (
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*)$`)
	docLink  = regexp.MustCompile(`(?:\]\(|\b)((?:docs/)?[A-Za-z0-9_/]*[A-Z_]+\.md)#([a-z0-9_-]+)`)
	localRef = regexp.MustCompile(`\]\(#([a-z0-9_-]+)\)`)
)

// slug is GitHub's anchor of a heading.
func slug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(f text) map[string]bool {
	a := map[string]bool{}
	inFence := false
	for _, line := range f.lines {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if m := heading.FindStringSubmatch(line); m != nil && !inFence {
			a[slug(strings.ReplaceAll(m[1], "`", ""))] = true
		}
	}
	return a
}

// TestLinksResolve: every FILE.md#anchor in the docs and the alert rules
// names a file that exists and a heading in it.
func TestLinksResolve(t *testing.T) {
	files := markdown(t)
	byName := map[string]text{}
	for _, f := range files {
		byName[f.path] = f
	}
	resolve := func(from, target string) (text, bool) {
		for _, cand := range []string{target, filepath.Join(filepath.Dir(from), target), filepath.Join("docs", target)} {
			if f, ok := byName[filepath.Clean(cand)]; ok {
				return f, true
			}
		}
		return text{}, false
	}
	sources := append(slices.Clone(files), read(t, "docs/monitoring/alerts.yml"))
	links := 0
	for _, f := range sources {
		for i, line := range f.lines {
			for _, m := range docLink.FindAllStringSubmatch(line, -1) {
				links++
				target, ok := resolve(f.path, m[1])
				if !ok {
					t.Errorf("%s:%d: link to %s: no such document", f.path, i+1, m[1])
					continue
				}
				if !anchors(target)[m[2]] {
					t.Errorf("%s:%d: %s has no heading #%s", f.path, i+1, target.path, m[2])
				}
			}
			for _, m := range localRef.FindAllStringSubmatch(line, -1) {
				links++
				if !anchors(f)[m[1]] {
					t.Errorf("%s:%d: no heading #%s in this document", f.path, i+1, m[1])
				}
			}
		}
	}
	t.Logf("checked %d links", links)
}

var makeWord = regexp.MustCompile("(?:^|[`\\s$#])make ([a-z][a-z0-9-]*)")

// TestMakeTargetsExist: every `make TARGET` the docs name exists.
func TestMakeTargetsExist(t *testing.T) {
	targets := map[string]bool{}
	for _, line := range read(t, "Makefile").lines {
		if m := regexp.MustCompile(`^([a-z][a-z0-9-]*):`).FindStringSubmatch(line); m != nil {
			targets[m[1]] = true
		}
	}
	for _, f := range markdown(t) {
		for _, c := range commandLines(f) {
			for _, m := range makeWord.FindAllStringSubmatch(" "+c.cmd, -1) {
				if !targets[m[1]] {
					t.Errorf("%s: make %s: no such target", c.where, m[1])
				}
			}
		}
	}
}
