package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docBlock is a fenced block of docs/POLICY.md.
type docBlock struct {
	info string // the fence's info string: "toml", "toml invalid", "text"
	line int    // line of the opening fence
	body string
}

func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	var out []docBlock
	var cur *docBlock
	for n, line := range strings.Split(readFile(t, path), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &docBlock{info: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n + 1}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated fenced block", path, cur.line)
	}
	return out
}

var versionLine = regexp.MustCompile(`(?m)^version\s*=`)

// TestDocExamples parses every toml block of docs/POLICY.md as written.
// A block without a version line is a rule snippet, parsed after the
// standard header. "toml invalid" blocks must fail; when a text block
// follows one, it is the exact list of problems.
func TestDocExamples(t *testing.T) {
	const doc = "../docs/POLICY.md"
	blocks := docBlocks(t, doc)
	tested := 0
	for i, b := range blocks {
		if b.info != "toml" && b.info != "toml invalid" {
			continue
		}
		tested++
		t.Run(fmt.Sprintf("%s@%d", b.info, b.line), func(t *testing.T) {
			src := b.body
			if !versionLine.MatchString(src) {
				src = head + src
			}
			_, err := Parse("policy.toml", []byte(src))
			if b.info == "toml" {
				if err != nil {
					t.Fatalf("%s:%d: example is not a valid policy:\n%v", doc, b.line, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s:%d: example marked invalid is accepted", doc, b.line)
			}
			if i+1 < len(blocks) && blocks[i+1].info == "text" {
				if got, want := err.Error()+"\n", blocks[i+1].body; got != want {
					t.Errorf("%s:%d: problems differ from the text block at line %d:\n%s\nwant:\n%s",
						doc, b.line, blocks[i+1].line, got, want)
				}
			}
		})
	}
	if tested < 10 {
		t.Errorf("only %d toml blocks found in %s", tested, doc)
	}
}

// TestDocOneExamplePerKind checks that the reference has a worked example
// of every rule kind and protection.
func TestDocOneExamplePerKind(t *testing.T) {
	var all strings.Builder
	for _, b := range docBlocks(t, "../docs/POLICY.md") {
		if b.info == "toml" {
			all.WriteString(b.body)
		}
	}
	for _, want := range []string{"[[file]]", "[[exec]]", "[[network]]", `kind = "ptrace"`, `kind = "module_load"`,
		`kind = "agent"`, "inodes = ", "subtrees = ", "cgroups = ", "exempt_cgroups = ", "ports = ", "force = true"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("docs/POLICY.md has no valid example with %s", want)
		}
	}
}

// TestDocListsCriticalPaths keeps the host-safety table in step with the
// code.
func TestDocListsCriticalPaths(t *testing.T) {
	doc := readFile(t, "../docs/POLICY.md")
	for _, p := range CriticalPaths() {
		if !strings.Contains(doc, "`"+p+"`") {
			t.Errorf("docs/POLICY.md does not list host-critical path %s", p)
		}
	}
}

// TestExamples checks that every example policy is valid and is quoted in
// the reference as it is.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	doc := readFile(t, "../docs/POLICY.md")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(f, src); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(doc, "```toml\n"+string(src)+"```\n") {
				t.Errorf("docs/POLICY.md does not quote %s as it is", f)
			}
		})
	}
}
