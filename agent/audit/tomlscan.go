package audit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// tomlTable is a table of a TOML document as tomlScan finds it: enough to
// edit a rule's exempt_cgroups in place and keep everything else,
// comments included, byte for byte.
type tomlTable struct {
	// kind is the name of an array-of-tables header ("file" for
	// [[file]]); empty for the top level and for [table] headers.
	kind  string
	array bool
	id    string // the value of its id key, if a string
	// end is the offset just past the line of its last key/value pair.
	end    int
	exempt *tomlArray // its exempt_cgroups, if any
}

// tomlArray is the span of an array value.
type tomlArray struct {
	start, close int      // offsets of '[' and ']'
	elems        [][2]int // each element's span
	comma        bool     // a comma follows the last element
	multiline    bool
}

// tomlScanner walks a TOML document that the policy parser has accepted,
// so it only needs to find where things are, not to check them.
type tomlScanner struct {
	s string
	i int
}

var errScan = errors.New("unexpected TOML")

// tomlScan returns the tables of src in order; the first is the top level.
func tomlScan(src string) ([]tomlTable, error) {
	sc := &tomlScanner{s: src}
	tables := []tomlTable{{}}
	for {
		sc.skipBlank(true)
		if sc.eof() {
			return tables, nil
		}
		if sc.s[sc.i] == '[' {
			t, err := sc.header()
			if err != nil {
				return nil, err
			}
			tables = append(tables, t)
			continue
		}
		cur := &tables[len(tables)-1]
		if err := sc.keyval(cur); err != nil {
			return nil, err
		}
	}
}

func (sc *tomlScanner) eof() bool { return sc.i >= len(sc.s) }

func (sc *tomlScanner) fail(what string) error {
	line := strings.Count(sc.s[:min(sc.i, len(sc.s))], "\n") + 1
	return fmt.Errorf("line %d: %w: %s", line, errScan, what)
}

// skipBlank skips spaces and tabs, and with nl also newlines and comments.
func (sc *tomlScanner) skipBlank(nl bool) {
	for !sc.eof() {
		switch sc.s[sc.i] {
		case ' ', '\t':
			sc.i++
		case '\r', '\n':
			if !nl {
				return
			}
			sc.i++
		case '#':
			if !nl {
				return
			}
			sc.skipComment()
		default:
			return
		}
	}
}

func (sc *tomlScanner) skipComment() {
	if n := strings.IndexByte(sc.s[sc.i:], '\n'); n >= 0 {
		sc.i += n
	} else {
		sc.i = len(sc.s)
	}
}

// endLine skips the rest of a line (blanks and a comment) and its newline.
func (sc *tomlScanner) endLine() error {
	sc.skipBlank(false)
	if !sc.eof() && sc.s[sc.i] == '#' {
		sc.skipComment()
	}
	if sc.eof() {
		return nil
	}
	if sc.s[sc.i] == '\r' {
		sc.i++
	}
	if sc.eof() || sc.s[sc.i] != '\n' {
		return sc.fail("more after a value on its line")
	}
	sc.i++
	return nil
}

func (sc *tomlScanner) header() (tomlTable, error) {
	t := tomlTable{}
	open, close := "[", "]"
	if strings.HasPrefix(sc.s[sc.i:], "[[") {
		open, close, t.array = "[[", "]]", true
	}
	sc.i += len(open)
	n := strings.Index(sc.s[sc.i:], close)
	if n < 0 {
		return t, sc.fail("unterminated table header")
	}
	name := strings.TrimSpace(sc.s[sc.i : sc.i+n])
	sc.i += n + len(close)
	if t.array {
		t.kind = unquoteKey(name)
	}
	err := sc.endLine()
	t.end = sc.i
	return t, err
}

func unquoteKey(k string) string {
	if len(k) >= 2 && (k[0] == '"' || k[0] == '\'') && k[len(k)-1] == k[0] {
		if k[0] == '"' {
			if u, err := strconv.Unquote(k); err == nil {
				return u
			}
		}
		return k[1 : len(k)-1]
	}
	return k
}

// key moves over a key, quoted parts included, to its '='; noValue is the
// error when the line ends first.
func (sc *tomlScanner) key(noValue string) error {
	for !sc.eof() && sc.s[sc.i] != '=' && sc.s[sc.i] != '\n' {
		if c := sc.s[sc.i]; c == '"' || c == '\'' {
			if err := sc.str(); err != nil {
				return err
			}
			continue
		}
		sc.i++
	}
	if sc.eof() || sc.s[sc.i] != '=' {
		return sc.fail(noValue)
	}
	return nil
}

func (sc *tomlScanner) keyval(t *tomlTable) error {
	ks := sc.i
	if err := sc.key("a key without a value"); err != nil {
		return err
	}
	key := unquoteKey(strings.TrimSpace(sc.s[ks:sc.i]))
	sc.i++
	sc.skipBlank(false)
	vs := sc.i
	var arr *tomlArray
	if key == "exempt_cgroups" && !sc.eof() && sc.s[sc.i] == '[' {
		arr = &tomlArray{}
	}
	if err := sc.value(arr); err != nil {
		return err
	}
	switch key {
	case "id":
		if v := sc.s[vs:sc.i]; strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "'") {
			t.id = unquoteKey(v)
		}
	case "exempt_cgroups":
		t.exempt = arr
	}
	if err := sc.endLine(); err != nil {
		return err
	}
	t.end = sc.i
	return nil
}

// value skips one value; when arr is not nil the value is an array and
// arr records its layout.
func (sc *tomlScanner) value(arr *tomlArray) error {
	if sc.eof() {
		return sc.fail("a missing value")
	}
	switch sc.s[sc.i] {
	case '"', '\'':
		return sc.str()
	case '[':
		return sc.array(arr)
	case '{':
		return sc.inlineTable()
	}
	for !sc.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.s[sc.i])) {
		sc.i++
	}
	return nil
}

func (sc *tomlScanner) str() error {
	q := sc.s[sc.i]
	if strings.HasPrefix(sc.s[sc.i:], strings.Repeat(string(q), 3)) {
		delim := strings.Repeat(string(q), 3)
		sc.i += 3
		for !sc.eof() {
			if q == '"' && sc.s[sc.i] == '\\' {
				sc.i += 2
				continue
			}
			if strings.HasPrefix(sc.s[sc.i:], delim) {
				sc.i += 3
				for !sc.eof() && sc.s[sc.i] == q { // up to two quotes may end the content
					sc.i++
				}
				return nil
			}
			sc.i++
		}
		return sc.fail("unterminated string")
	}
	sc.i++
	for !sc.eof() && sc.s[sc.i] != '\n' {
		c := sc.s[sc.i]
		if q == '"' && c == '\\' {
			sc.i += 2
			continue
		}
		sc.i++
		if c == q {
			return nil
		}
	}
	return sc.fail("unterminated string")
}

func (sc *tomlScanner) array(arr *tomlArray) error {
	if arr == nil {
		arr = &tomlArray{}
	}
	arr.start = sc.i
	sc.i++
	for {
		sc.skipBlank(true)
		if sc.eof() {
			return sc.fail("unterminated array")
		}
		if sc.s[sc.i] == ']' {
			arr.close = sc.i
			arr.multiline = strings.Contains(sc.s[arr.start:arr.close], "\n")
			sc.i++
			return nil
		}
		es := sc.i
		if err := sc.value(nil); err != nil {
			return err
		}
		arr.elems = append(arr.elems, [2]int{es, sc.i})
		arr.comma = false
		sc.skipBlank(true)
		if !sc.eof() && sc.s[sc.i] == ',' {
			arr.comma = true
			sc.i++
		}
	}
}

func (sc *tomlScanner) inlineTable() error {
	sc.i++
	for {
		sc.skipBlank(false)
		if sc.eof() {
			return sc.fail("unterminated inline table")
		}
		switch sc.s[sc.i] {
		case '}':
			sc.i++
			return nil
		case ',':
			sc.i++
			continue
		}
		if err := sc.key("a key without a value in an inline table"); err != nil {
			return err
		}
		sc.i++
		sc.skipBlank(false)
		if err := sc.value(nil); err != nil {
			return err
		}
	}
}
