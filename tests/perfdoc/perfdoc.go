// Package perfdoc keeps the generated sections of docs/PERFORMANCE.md: each
// benchmark (make bench, make soak) rewrites only its own section, between
// the lines "<!-- NAME:begin -->" and "<!-- NAME:end -->", and leaves the
// others as they were.
package perfdoc

import (
	"bytes"
	"fmt"
	"os"
	"regexp"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func markers(name string) (begin, end []byte) {
	return []byte("<!-- " + name + ":begin -->\n"), []byte("<!-- " + name + ":end -->\n")
}

// Replace returns doc with section name's body replaced by body, or the
// section appended when doc has none. A section whose markers are
// duplicated or out of order is an error: nothing is guessed.
func Replace(doc []byte, name string, body []byte) ([]byte, error) {
	if !nameRE.Match([]byte(name)) {
		return nil, fmt.Errorf("section name %q: want lower-case letters, digits and dashes", name)
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	begin, end := markers(name)
	nb, ne := bytes.Count(doc, begin), bytes.Count(doc, end)
	switch {
	case nb == 0 && ne == 0:
		out := bytes.TrimRight(doc, "\n")
		if len(out) > 0 {
			out = append(out, "\n\n"...)
		}
		out = append(out, begin...)
		out = append(out, body...)
		return append(out, end...), nil
	case nb != 1 || ne != 1:
		return nil, fmt.Errorf("section %s: %d begin and %d end markers, want one of each", name, nb, ne)
	}
	i, j := bytes.Index(doc, begin), bytes.Index(doc, end)
	if j < i {
		return nil, fmt.Errorf("section %s: the end marker comes before the begin marker", name)
	}
	out := append([]byte(nil), doc[:i+len(begin)]...)
	out = append(out, body...)
	return append(out, doc[j:]...), nil
}

// ReplaceFile applies Replace to the file at path (created when missing)
// and writes it atomically.
func ReplaceFile(path, name string, body []byte) error {
	doc, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	out, err := Replace(doc, name, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, out, 0o644)
}
