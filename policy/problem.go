package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a policy, located in its source.
type Problem struct {
	File string `json:"file"`
	// Line and Col are 1-based; Col counts bytes, as Go tools do.
	Line int `json:"line"`
	Col  int `json:"col"`
	// Path is the TOML key path of what is wrong, e.g. "file[2].paths[0]";
	// empty for the document as a whole.
	Path string `json:"path"`
	Msg  string `json:"message"`
	// Hint says what to do about it; it may be empty.
	Hint string `json:"hint,omitempty"`
}

// String formats the problem as FILE:LINE:COL: message (hint).
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	if p.Hint != "" {
		b.WriteString(" (")
		b.WriteString(p.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Problems is every problem found in a policy, in source order. It is the
// error Parse returns for an invalid policy; use errors.As to get it.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// keyPath names a place in a policy document. The schema is shallow, so a
// place is at most: a top-level key, an element of an array of tables, a
// key of that element, and an element of that key's array.
type keyPath struct {
	top   string
	i     int // element of top, or -1
	field string
	j     int // element of field, or -1
}

func topKey(name string) keyPath           { return keyPath{top: name, i: -1, j: -1} }
func ruleAt(kind Kind, i int) keyPath      { return keyPath{top: kind.String(), i: i, j: -1} }
func (k keyPath) key(field string) keyPath { k.field = field; return k }
func (k keyPath) elem(j int) keyPath       { k.j = j; return k }
func (k keyPath) isDocument() bool         { return k.top == "" }
func (k keyPath) indexKey() string         { return strings.Join(k.segments(), keySep) }

func (k keyPath) segments() []string {
	var s []string
	if k.top == "" {
		return s
	}
	s = append(s, k.top)
	if k.i >= 0 {
		s = append(s, strconv.Itoa(k.i))
	}
	if k.field != "" {
		s = append(s, k.field)
		if k.j >= 0 {
			s = append(s, strconv.Itoa(k.j))
		}
	}
	return s
}

// up returns the enclosing place.
func (k keyPath) up() (keyPath, bool) {
	switch {
	case k.j >= 0:
		k.j = -1
	case k.field != "":
		k.field = ""
	case k.i >= 0:
		k.i = -1
	case k.top != "":
		k.top = ""
	default:
		return k, false
	}
	return k, true
}

func (k keyPath) display() string {
	var b strings.Builder
	b.WriteString(quoteKey(k.top))
	if k.i >= 0 {
		fmt.Fprintf(&b, "[%d]", k.i)
	}
	if k.field != "" {
		b.WriteString(".")
		b.WriteString(k.localName())
	}
	return b.String()
}

// localName is the place relative to its rule: "paths[1]", "mode".
func (k keyPath) localName() string {
	if k.field == "" {
		return k.display()
	}
	if k.j >= 0 {
		return fmt.Sprintf("%s[%d]", quoteKey(k.field), k.j)
	}
	return quoteKey(k.field)
}

// quoteKey quotes a key that is not a bare TOML key.
func quoteKey(s string) string {
	if s == "" {
		return `""`
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(s)
		}
	}
	return s
}

// problem is a Problem before it is located in the source.
type problem struct {
	at    keyPath
	value bool // point at the value rather than the key
	msg   string
	// hint may hold "{ref}", which is replaced by the position of ref.
	hint   string
	ref    keyPath
	hasRef bool
}

// locate turns problems into Problems, sorted by position. ix may be nil,
// for a policy that has no source.
func locate(file string, ix *posIndex, probs []problem) Problems {
	out := make(Problems, len(probs))
	for n, p := range probs {
		out[n] = Problem{File: file, Path: p.at.display(), Msg: p.msg, Hint: p.hint}
		if p.at.isDocument() {
			out[n].Path = ""
		}
		if ix != nil {
			out[n].Line, out[n].Col = ix.position(p.at, p.value)
		}
		if p.hasRef {
			ref := p.ref.display()
			if ix != nil {
				l, c := ix.position(p.ref, p.value)
				ref = fmt.Sprintf("%d:%d", l, c)
			}
			out[n].Hint = strings.ReplaceAll(out[n].Hint, "{ref}", ref)
		}
	}
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), strings.Compare(a.Msg, b.Msg))
	})
	return out
}

// suggest returns the candidate closest to s, if it is close enough to be
// a likely typo: one edit for words of up to four letters, two for longer,
// or a different ending to a shared stem ("protection" for "protect").
func suggest(s string, candidates []string) (string, bool) {
	limit := 1
	if len(s) > 4 {
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" {
		return best, true
	}
	for _, c := range candidates {
		if stem := commonPrefix(s, c); stem >= 5 && stem >= min(len(s), len(c))-1 {
			return c, true
		}
	}
	return "", false
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes.
func editDistance(a, b string) int {
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(rows[i-1][j]+1, rows[i][j-1]+1, rows[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, rows[i-2][j-2]+1)
			}
			rows[i][j] = d
		}
	}
	return rows[len(a)][len(b)]
}
