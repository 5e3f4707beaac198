package policy

import (
	"sort"
	"strconv"
	"strings"
)

// BurntSushi/toml reports positions for syntax errors only. posIndex
// recovers the source position of every key, table header and array
// element by scanning the document again. It runs only on documents the
// TOML parser has accepted, so it can be small: it tracks keys, tables,
// arrays of tables, inline tables and arrays, and skips over every other
// value without interpreting it. Malformed input never makes it loop or
// panic; it just yields fewer positions (FuzzParse checks that valid input
// yields a position for every decoded key and element).

// keySep joins the segments of a key path in the index. Array elements are
// segments written as decimal numbers.
const keySep = "\x00"

type span struct{ key, val int } // byte offsets

type posIndex struct {
	lineStarts []int
	at         map[string]span
}

// buildIndex indexes src, which must not start with a byte order mark.
func buildIndex(src string) *posIndex {
	ix := &posIndex{at: make(map[string]span)}
	ix.lineStarts = append(ix.lineStarts, 0)
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			ix.lineStarts = append(ix.lineStarts, i+1)
		}
	}
	sc := scanner{s: src, ix: ix, aot: make(map[string]int)}
	sc.document()
	return ix
}

// offset returns the byte offset of the key (or value) at path, or of the
// nearest enclosing place that has one; the document itself is offset 0.
func (ix *posIndex) offset(path keyPath, value bool) int {
	for {
		if path.isDocument() {
			return 0
		}
		if sp, ok := ix.at[path.indexKey()]; ok {
			if value && sp.val >= 0 {
				return sp.val
			}
			return sp.key
		}
		path, _ = path.up()
		value = false
	}
}

// position returns the 1-based line and byte column of path.
func (ix *posIndex) position(path keyPath, value bool) (line, col int) {
	return ix.lineCol(ix.offset(path, value))
}

func (ix *posIndex) lineCol(off int) (line, col int) {
	n := sort.Search(len(ix.lineStarts), func(i int) bool { return ix.lineStarts[i] > off })
	return n, off - ix.lineStarts[n-1] + 1
}

type scanner struct {
	s   string
	i   int
	ix  *posIndex
	aot map[string]int // array of tables path -> elements so far
}

func join(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + keySep + seg
}

func (sc *scanner) setKey(path string, off int) {
	if _, ok := sc.ix.at[path]; !ok {
		sc.ix.at[path] = span{key: off, val: -1}
	}
}

func (sc *scanner) setVal(path string, off int) {
	sp, ok := sc.ix.at[path]
	if !ok {
		sp.key = off
	}
	if !ok || sp.val < 0 {
		sp.val = off
	}
	sc.ix.at[path] = sp
}

func (sc *scanner) peek(k int) byte {
	if sc.i+k < len(sc.s) {
		return sc.s[sc.i+k]
	}
	return 0
}

func (sc *scanner) eof() bool { return sc.i >= len(sc.s) }

// skipSpace skips blanks; with nl, also newlines and comments.
func (sc *scanner) skipSpace(nl bool) {
	for !sc.eof() {
		switch c := sc.s[sc.i]; {
		case c == ' ' || c == '\t':
			sc.i++
		case nl && (c == '\n' || c == '\r'):
			sc.i++
		case nl && c == '#':
			sc.skipComment()
		default:
			return
		}
	}
}

func (sc *scanner) skipComment() {
	if k := strings.IndexByte(sc.s[sc.i:], '\n'); k >= 0 {
		sc.i += k
	} else {
		sc.i = len(sc.s)
	}
}

func (sc *scanner) document() {
	table := ""
	for {
		sc.skipSpace(true)
		if sc.eof() {
			return
		}
		start := sc.i
		if sc.s[sc.i] == '[' {
			table = sc.header()
		} else {
			sc.keyval(table)
		}
		if sc.i == start { // no progress: malformed input
			sc.i++
		}
	}
}

// header scans [a.b] or [[a.b]] and returns the table's resolved path.
func (sc *scanner) header() string {
	start := sc.i
	double := sc.peek(1) == '['
	sc.i++
	if double {
		sc.i++
	}
	segs, offs := sc.keySegs()
	path := ""
	for n, seg := range segs {
		path = join(path, seg)
		last := n == len(segs)-1
		switch {
		case last && double:
			count := sc.aot[path]
			sc.aot[path] = count + 1
			sc.setKey(path, start)
			path = join(path, strconv.Itoa(count))
			sc.setKey(path, start)
		default:
			if last {
				sc.setKey(path, start)
			} else {
				sc.setKey(path, offs[n])
			}
			if count, ok := sc.aot[path]; ok {
				path = join(path, strconv.Itoa(count-1))
			}
		}
	}
	sc.skipSpace(false)
	for k := 0; k < 2 && sc.peek(0) == ']'; k++ {
		sc.i++
	}
	return path
}

// keySegs scans a possibly dotted key and returns its segments and their
// offsets.
func (sc *scanner) keySegs() (segs []string, offs []int) {
	for {
		sc.skipSpace(false)
		if sc.eof() {
			return segs, offs
		}
		offs = append(offs, sc.i)
		segs = append(segs, sc.keySeg())
		sc.skipSpace(false)
		if sc.peek(0) != '.' {
			return segs, offs
		}
		sc.i++
	}
}

func (sc *scanner) keySeg() string {
	switch sc.s[sc.i] {
	case '"':
		return sc.basicString()
	case '\'':
		start := sc.i + 1
		sc.i = start
		for !sc.eof() && sc.s[sc.i] != '\'' && sc.s[sc.i] != '\n' {
			sc.i++
		}
		seg := sc.s[start:sc.i]
		if !sc.eof() && sc.s[sc.i] == '\'' {
			sc.i++
		}
		return seg
	}
	start := sc.i
	for !sc.eof() && !strings.ContainsRune(" \t\r\n.=[]{},#\"'", rune(sc.s[sc.i])) {
		sc.i++
	}
	return sc.s[start:sc.i]
}

// keyval scans key = value relative to table.
func (sc *scanner) keyval(table string) {
	segs, offs := sc.keySegs()
	if len(segs) == 0 {
		return
	}
	path := table
	for n, seg := range segs {
		path = join(path, seg)
		sc.setKey(path, offs[n])
	}
	sc.skipSpace(false)
	if sc.peek(0) != '=' {
		return
	}
	sc.i++
	sc.skipSpace(false)
	sc.value(path)
}

func (sc *scanner) value(path string) {
	if sc.eof() {
		return
	}
	sc.setVal(path, sc.i)
	switch c := sc.s[sc.i]; c {
	case '"':
		if strings.HasPrefix(sc.s[sc.i:], `"""`) {
			sc.multiline('"')
		} else {
			sc.basicString()
		}
	case '\'':
		if strings.HasPrefix(sc.s[sc.i:], `'''`) {
			sc.multiline('\'')
		} else {
			sc.keySeg()
		}
	case '[':
		sc.array(path)
	case '{':
		sc.inlineTable(path)
	default:
		sc.bare()
	}
}

func (sc *scanner) array(path string) {
	sc.i++
	for j := 0; ; j++ {
		sc.skipSpace(true)
		if sc.eof() {
			return
		}
		if sc.s[sc.i] == ']' {
			sc.i++
			return
		}
		start := sc.i
		sc.value(join(path, strconv.Itoa(j)))
		sc.skipSpace(true)
		if sc.peek(0) == ',' {
			sc.i++
		} else if sc.i == start {
			return
		}
	}
}

func (sc *scanner) inlineTable(path string) {
	sc.i++
	for {
		sc.skipSpace(true)
		if sc.eof() {
			return
		}
		if sc.s[sc.i] == '}' {
			sc.i++
			return
		}
		start := sc.i
		sc.keyval(path)
		sc.skipSpace(true)
		if sc.peek(0) == ',' {
			sc.i++
		} else if sc.i == start {
			return
		}
	}
}
