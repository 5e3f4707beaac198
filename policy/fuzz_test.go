package policy

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse feeds arbitrary documents to Parse. It must not panic; every
// problem must carry a position inside the document; a valid policy must
// compile deterministically; and the position index must cover every key
// and array element of any document the TOML parser accepts.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/compile/*.toml")
	examples, _ := filepath.Glob("examples/*.toml")
	for _, path := range append(files, examples...) {
		f.Add([]byte(readFile(f, path)))
	}
	f.Add([]byte(head + "[[file]]\nid = \"a\"\npaths = [\"/x/../y\", 3]\n[file.x]\n"))
	f.Add([]byte(head + "network = [{id = \"n\", cidrs = [\"::ffff:1.2.3.4/128\"], ports = [\"1-2\", 3]}]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("f.toml", src)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Parse error is not a non-empty Problems: %v", err)
			}
			text := strings.TrimPrefix(string(src), "\uFEFF")
			lines := strings.Split(text, "\n")
			for _, pr := range ps {
				if pr.Line < 1 || pr.Line > len(lines) || pr.Col < 1 || pr.Col > len(lines[pr.Line-1])+1 {
					t.Fatalf("problem outside the document (%d lines): %s", len(lines), pr)
				}
			}
		} else {
			c := Compile(p)
			if again := Compile(p); again.Digest != c.Digest {
				t.Fatalf("digest not deterministic")
			}
			if _, err := json.Marshal(c); err != nil {
				t.Fatalf("compiled form does not encode: %v", err)
			}
		}
		text := strings.TrimPrefix(string(src), "\uFEFF")
		var doc map[string]any
		if _, err := toml.Decode(text, &doc); err == nil {
			if err := indexCovers(buildIndex(text), doc); err != nil {
				t.Fatalf("position index: %v", err)
			}
		}
	})
}
