package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompileGolden compiles every policy in testdata/compile and examples
// and compares the JSON of the compiled form, digest included, with
// testdata/compile/NAME.golden.json. Run with -update to rewrite them.
func TestCompileGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/compile/*.toml")
	examples, _ := filepath.Glob("examples/*.toml")
	for _, path := range append(files, examples...) {
		name := strings.TrimSuffix(filepath.Base(path), ".toml")
		t.Run(name, func(t *testing.T) {
			p, err := Parse(path, []byte(readFile(t, path)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(Compile(p), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata/compile", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, golden); string(got) != want {
				t.Errorf("compiled %s differs from %s (run go test -update to accept):\n%s", path, golden, got)
			}
		})
	}
}

func compileSrc(t *testing.T, src string) *Compiled {
	t.Helper()
	p, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return Compile(p)
}

// TestDigestMeaning checks that the digest follows the policy's meaning:
// the order of rules and targets does not change it, anything else does.
func TestDigestMeaning(t *testing.T) {
	base := compileSrc(t, head+`
[[file]]
id = "a"
paths = ["/x", "/y"]
[[exec]]
id = "b"
subtrees = ["/tmp"]
`).Digest
	same := []string{
		head + "[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp/\"]\n[[file]]\nid = \"a\"\npaths = [\"/y\", \"/x\"]\n",
		head + "# comment\n[[file]]\nid = \"a\"\npaths = [\"/x\", \"/y\"]\naccess = \"any\"\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\nmode = \"enforce\"\n",
	}
	for _, src := range same {
		if d := compileSrc(t, src).Digest; d != base {
			t.Errorf("digest changed for an equivalent policy:\n%s", src)
		}
	}
	differ := map[string]string{
		"serial":  strings.Replace(head, "serial = 1", "serial = 2", 1) + "[[file]]\nid = \"a\"\npaths = [\"/x\", \"/y\"]\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"access":  head + "[[file]]\nid = \"a\"\npaths = [\"/x\", \"/y\"]\naccess = \"read\"\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"mode":    head + "[[file]]\nid = \"a\"\npaths = [\"/x\", \"/y\"]\nmode = \"audit\"\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"id":      head + "[[file]]\nid = \"c\"\npaths = [\"/x\", \"/y\"]\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"match":   head + "[[file]]\nid = \"a\"\npaths = [\"/x\"]\nsubtrees = [\"/y\"]\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"scope":   head + "[[file]]\nid = \"a\"\npaths = [\"/x\", \"/y\"]\ncgroups = [\"/c\"]\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"name":    head + "name = \"n\"\n[[file]]\nid = \"a\"\npaths = [\"/x\", \"/y\"]\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
		"targets": head + "[[file]]\nid = \"a\"\npaths = [\"/x\", \"/z\"]\n[[exec]]\nid = \"b\"\nsubtrees = [\"/tmp\"]\n",
	}
	for what, src := range differ {
		if d := compileSrc(t, src).Digest; d == base {
			t.Errorf("digest did not change with the %s", what)
		}
	}
}

// TestCanonicalEncoding pins the documented byte layout on a small policy.
func TestCanonicalEncoding(t *testing.T) {
	c := compileSrc(t, head+`
[[network]]
id = "n"
cidrs = ["10.0.0.0/8"]
ports = [53]
protocol = "udp"
cgroups = ["/c"]
`)
	var w bytes.Buffer
	le := func(n int, v uint64) {
		for i := range n {
			w.WriteByte(byte(v >> (8 * i)))
		}
	}
	str := func(s string) { le(4, uint64(len(s))); w.WriteString(s) }
	w.WriteString("aegisbpf-compiled-policy-v1\n")
	le(8, 1)  // version
	str("")   // name
	le(1, 2)  // mode enforce
	le(8, 1)  // serial
	le(4, 1)  // rules
	le(4, 0)  // index
	str("n")  // id
	le(1, 3)  // kind network
	le(1, 2)  // mode enforce
	le(4, 1)  // cgroups
	str("/c") //
	le(4, 0)  // exempt cgroups
	le(4, 0)  // files
	le(4, 0)  // execs
	le(4, 1)  // net4
	le(4, 0)  // rule
	w.Write([]byte{10, 0, 0, 0})
	le(1, 8)  // bits
	le(1, 17) // udp
	le(4, 1)  // ports
	le(2, 53) // lo
	le(2, 53) // hi
	le(4, 0)  // net6
	le(4, 0)  // protections
	le(4, 1)  // cgroups
	str("/c") //
	if got := canonicalEncoding(c); !bytes.Equal(got, w.Bytes()) {
		t.Errorf("canonical encoding:\n% x\nwant:\n% x", got, w.Bytes())
	}
}

func TestCompileNormalizes(t *testing.T) {
	c := compileSrc(t, head+`
[[network]]
id = "n"
cidrs = ["::ffff:192.0.2.0/120", "::ffff:0:0/96", "::/0"]
ports = ["1000-2000", 2001, 5, "1500-1600", 4]
`)
	var got []string
	for _, e := range append(c.Net4, c.Net6...) {
		got = append(got, e.Prefix.String())
	}
	if want := "0.0.0.0/0 192.0.2.0/24 ::/0"; strings.Join(got, " ") != want {
		t.Errorf("prefixes %v, want %s", got, want)
	}
	ports, _ := json.Marshal(c.Net4[0].Ports)
	if want := `[{"lo":4,"hi":5},{"lo":1000,"hi":2001}]`; string(ports) != want {
		t.Errorf("ports %s, want %s", ports, want)
	}
}
