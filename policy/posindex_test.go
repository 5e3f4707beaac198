package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestPosIndex(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want maps a path of /-separated segments (array elements as numbers) to
		// "LINE:COL" of its key, or "LINE:COL=LINE:COL" for key=value.
		want map[string]string
	}{
		{"keys and values", "a = 1\n  b\t= \"x\"\n", map[string]string{
			"a": "1:1=1:5", "b": "2:3=2:7",
		}},
		{"tables", "[t]\nk = 1\n[t.u]\nk = 2\n", map[string]string{
			"t": "1:1", "t/k": "2:1=2:5", "t/u": "3:1", "t/u/k": "4:1",
		}},
		{"arrays of tables", "[[r]]\nid = 'a'\n\n[[r]]\nid = 'b'\n[r.s]\nx = 1\n", map[string]string{
			"r/0": "1:1", "r/0/id": "2:1=2:6", "r/1": "4:1", "r/1/id": "5:1=5:6", "r/1/s": "6:1", "r/1/s/x": "7:1",
		}},
		{"nested arrays of tables", "[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n[[a]]\n[[a.b]]\nx = 3\n", map[string]string{
			"a/0/b/0/x": "3:1", "a/0/b/1/x": "5:1", "a/1/b/0/x": "8:1",
		}},
		{"dotted and quoted keys", "a . \"b.c\" = 1\n'lit'.x = 2\n\"esc\\u0041\" = 3\n", map[string]string{
			"a": "1:1", "a/b.c": "1:5=1:13", "lit": "2:1", "lit/x": "2:7=2:11", "escA": "3:1=3:15",
		}},
		{"arrays across lines with comments", "p = [ # c\n  \"/a\", # d\n\n  \"/b\" ,\n]\nq = 1\n", map[string]string{
			"p": "1:1=1:5", "p/0": "2:3", "p/1": "4:3", "q": "6:1",
		}},
		{"nested arrays", "p = [[1, 2], [3]]\n", map[string]string{
			"p/0": "1:6", "p/0/1": "1:10", "p/1/0": "1:15",
		}},
		{"inline tables", "r = [{id = \"a\", x = [1]}, {id = \"b\"}]\nt = { a.b = 1 }\n", map[string]string{
			"r/0": "1:6", "r/0/id": "1:7=1:12", "r/0/x/0": "1:22", "r/1/id": "1:28", "t/a/b": "2:9=2:13",
		}},
		{"multi-line strings", "a = \"\"\"\nx = 1\n\"quoted\" \\\"\"\"\" \"\"\"\nb = '''\n[[not]]\n'''''\nc = 1\n", map[string]string{
			"a": "1:1=1:5", "b": "4:1=4:5", "c": "7:1",
		}},
		{"strings with delimiters", "a = \"]#,\\\"}\"\nb = 'x#'\nc = 1\n", map[string]string{
			"b": "2:1", "c": "3:1",
		}},
		{"datetimes", "d = 1979-05-27 07:32:00Z\ne = 07:32:00\nf = 1\n", map[string]string{
			"d": "1:1=1:5", "e": "2:1", "f": "3:1",
		}},
		{"CRLF", "a = 1\r\n[[r]]\r\nid = \"x\"\r\n", map[string]string{
			"a": "1:1", "r/0": "2:1", "r/0/id": "3:1=3:6",
		}},
		{"UTF-8 before a key", "n = \"é\"\nm = [\"é\", \"x\"]\n", map[string]string{
			"m/1": "2:12",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := buildIndex(tt.src)
			for path, want := range tt.want {
				sp, ok := ix.at[strings.ReplaceAll(path, "/", keySep)]
				if !ok {
					t.Errorf("%s: not indexed", path)
					continue
				}
				kl, kc := ix.lineCol(sp.key)
				got := fmt.Sprintf("%d:%d", kl, kc)
				if strings.Contains(want, "=") {
					vl, vc := ix.lineCol(sp.val)
					got += fmt.Sprintf("=%d:%d", vl, vc)
				}
				if got != want {
					t.Errorf("%s: at %s, want %s", path, got, want)
				}
			}
		})
	}
}

// TestPosIndexCoversDocuments checks, on every policy in testdata and the
// examples, that every decoded key and array element has a position.
func TestPosIndexCoversDocuments(t *testing.T) {
	for _, name := range policyFiles(t) {
		t.Run(name, func(t *testing.T) {
			src := readFile(t, name)
			var doc map[string]any
			if _, err := toml.Decode(src, &doc); err != nil {
				t.Skip("not valid TOML")
			}
			if err := indexCovers(buildIndex(src), doc); err != nil {
				t.Error(err)
			}
		})
	}
}

// indexCovers reports the first decoded key or element of doc that ix has
// no position for.
func indexCovers(ix *posIndex, doc map[string]any) error {
	var walk func(path string, v any) error
	walk = func(path string, v any) error {
		if path != "" {
			if _, ok := ix.at[path]; !ok {
				return fmt.Errorf("no position for %q", strings.ReplaceAll(path, keySep, "."))
			}
		}
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if err := walk(join(path, k), e); err != nil {
					return err
				}
			}
		case []map[string]any:
			for j, e := range v {
				if err := walk(join(path, fmt.Sprint(j)), e); err != nil {
					return err
				}
			}
		case []any:
			for j, e := range v {
				if err := walk(join(path, fmt.Sprint(j)), e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("", doc)
}
