package policy

import "testing"

func TestCompile100k(t *testing.T) {
	if testing.Short() {
		t.Skip("slow in -short mode")
	}
	p, err := Parse("gen.toml", genPolicy(100_000))
	if err != nil {
		t.Fatal(err)
	}
	c := Compile(p)
	if len(c.Rules) != 100_000 {
		t.Fatalf("compiled %d rules, want 100000", len(c.Rules))
	}
	for i, r := range c.Rules {
		if r.Index != uint32(i) || (i > 0 && c.Rules[i-1].ID >= r.ID) {
			t.Fatalf("rule %d: index %d id %q not dense and sorted", i, r.Index, r.ID)
		}
	}
	if got := len(c.Files) + len(c.Execs) + len(c.Net4) + len(c.Net6) + len(c.Protections); got != 100_000 {
		t.Errorf("compiled %d entries, want 100000", got)
	}
	if again := Compile(p); again.Digest != c.Digest {
		t.Errorf("digest not deterministic: %s then %s", c.Digest, again.Digest)
	}
}

// BenchmarkCompile100k compiles a parsed policy of 100k mixed rules; the
// budget is 100 ms (docs/POLICY.md, "Capacity").
func BenchmarkCompile100k(b *testing.B) {
	p, err := Parse("gen.toml", genPolicy(100_000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Compile(p)
	}
}

// BenchmarkParse100k decodes and validates the same policy from TOML.
func BenchmarkParse100k(b *testing.B) {
	src := genPolicy(100_000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("gen.toml", src); err != nil {
			b.Fatal(err)
		}
	}
}
