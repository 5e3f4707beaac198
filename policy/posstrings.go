package policy

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The position scanner's handling of values it skips: strings, and bare
// numbers, booleans and dates. Only a quoted key's text is ever decoded.

// bare skips a number, boolean, date or time. A date may be followed by a
// space and a time ("1979-05-27 07:32:00").
func (sc *scanner) bare() {
	start := sc.i
	for !sc.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.s[sc.i])) {
		sc.i++
	}
	if sc.i-start == 10 && sc.s[start+4] == '-' && sc.peek(0) == ' ' &&
		isDigit(sc.peek(1)) && isDigit(sc.peek(2)) && sc.peek(3) == ':' {
		sc.i++
		sc.bare()
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// basicString scans "..." and returns its decoded value.
func (sc *scanner) basicString() string {
	sc.i++
	var b strings.Builder
	for !sc.eof() {
		c := sc.s[sc.i]
		switch {
		case c == '"':
			sc.i++
			return b.String()
		case c == '\n':
			return b.String()
		case c == '\\':
			sc.escape(&b)
		default:
			b.WriteByte(c)
			sc.i++
		}
	}
	return b.String()
}

// escape decodes the escape sequence at sc.i.
func (sc *scanner) escape(b *strings.Builder) {
	sc.i++ // backslash
	c := sc.peek(0)
	sc.i = min(sc.i+1, len(sc.s))
	digits := 0
	switch c {
	case 'b':
		b.WriteByte('\b')
	case 't':
		b.WriteByte('\t')
	case 'n':
		b.WriteByte('\n')
	case 'f':
		b.WriteByte('\f')
	case 'r':
		b.WriteByte('\r')
	case 'e':
		b.WriteByte(0x1b)
	case '"', '\\':
		b.WriteByte(c)
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	}
	if digits == 0 || sc.i+digits > len(sc.s) {
		return
	}
	v, err := strconv.ParseUint(sc.s[sc.i:sc.i+digits], 16, 32)
	sc.i += digits
	if err == nil && utf8.ValidRune(rune(v)) {
		b.WriteRune(rune(v))
	}
}

// multiline skips a multi-line string (three quotes q open and close it);
// the closing quotes may be preceded by up to two more.
func (sc *scanner) multiline(q byte) {
	delim := strings.Repeat(string(q), 3)
	sc.i += 3
	for !sc.eof() {
		if q == '"' && sc.s[sc.i] == '\\' {
			sc.i += 2
			continue
		}
		if strings.HasPrefix(sc.s[sc.i:], delim) {
			sc.i += 3
			for k := 0; k < 2 && sc.peek(0) == q; k++ {
				sc.i++
			}
			return
		}
		sc.i++
	}
	sc.i = min(sc.i, len(sc.s))
}
