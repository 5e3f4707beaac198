package policy

import "strings"

// maxNesting bounds how deeply arrays and inline tables may nest. The
// language needs three levels (file = [{ paths = ["/x"] }]), while the
// TOML decoder takes time quadratic in the depth (a thousand nested inline
// tables cost it most of a second). Deeper documents are refused before
// they are decoded.
const maxNesting = 16

// tooDeep returns the byte offset of the first '[' or '{' nested deeper
// than maxNesting, or -1. It runs in linear time and skips strings and
// comments, so it is exact for any valid TOML; on invalid TOML it can only
// err toward reporting deep nesting, which is then also true of the text.
func tooDeep(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '#':
			i = skipTo(s, i+1, "\n") - 1
		case '"':
			if strings.HasPrefix(s[i:], `"""`) {
				i = skipQuoted(s, i+3, `"""`, true) - 1
			} else {
				i = skipQuoted(s, i+1, `"`, true) - 1
			}
		case '\'':
			if strings.HasPrefix(s[i:], `'''`) {
				i = skipTo(s, i+3, `'''`) - 1
			} else {
				i = skipQuoted(s, i+1, `'`, false) - 1
			}
		case '[', '{':
			if depth++; depth > maxNesting {
				return i
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return -1
}

// skipTo returns the offset just past the next end at or after i.
func skipTo(s string, i int, end string) int {
	if k := strings.Index(s[i:], end); k >= 0 {
		return i + k + len(end)
	}
	return len(s)
}

// skipQuoted returns the offset just past the closing quote of a string
// starting at i. A single-line string also ends at a newline.
func skipQuoted(s string, i int, quote string, escapes bool) int {
	for i < len(s) {
		switch {
		case escapes && s[i] == '\\':
			i += 2
		case strings.HasPrefix(s[i:], quote):
			return i + len(quote)
		case len(quote) == 1 && s[i] == '\n':
			return i
		default:
			i++
		}
	}
	return len(s)
}
