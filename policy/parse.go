package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// Policy is a decoded and validated policy. Only Parse makes one, so a
// *Policy always satisfies every rule of the language; it is immutable.
type Policy struct {
	version int64
	name    string
	mode    Mode
	serial  uint64
	rules   []rule // in source order, kind by kind
}

// Name returns the policy's optional name.
func (p *Policy) Name() string { return p.name }

// Mode returns the policy-wide mode.
func (p *Policy) Mode() Mode { return p.mode }

// Serial returns the policy's serial number.
func (p *Policy) Serial() uint64 { return p.serial }

// Len returns the number of rules.
func (p *Policy) Len() int { return len(p.rules) }

// ReadFile reads a policy file of at most MaxFileSize bytes.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("reading policy %s: larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// Parse decodes and validates the policy in src; file names it in
// problems. On any problem it returns a nil *Policy and a Problems error
// that lists every problem found, each with its position.
func Parse(file string, src []byte) (*Policy, error) {
	text := strings.TrimPrefix(string(src), "\uFEFF")
	if off := tooDeep(text); off >= 0 {
		line, col := buildLines(text).lineCol(off)
		return nil, Problems{{File: file, Line: line, Col: col,
			Msg:  fmt.Sprintf("arrays and inline tables nest deeper than %d levels", maxNesting),
			Hint: "a policy needs at most 3"}}
	}
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		return nil, syntaxProblem(file, text, err)
	}
	d := &decoder{}
	p := d.document(doc)
	d.validate(p)
	if len(d.probs) > 0 {
		return nil, locate(file, buildIndex(text), d.probs)
	}
	return p, nil
}

// syntaxProblem turns a TOML parse error into a located Problem.
func syntaxProblem(file, text string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return Problems{{File: file, Msg: fmt.Sprintf("syntax error: %v", err)}}
	}
	ix := buildLines(text)
	line, col := pe.Position.Line, 1
	if off := pe.Position.Start; off > 0 && off <= len(text) {
		line, col = ix.lineCol(off)
	}
	msg := pe.Message
	if msg != "" {
		msg = strings.ToLower(msg[:1]) + msg[1:]
	}
	msg = strings.TrimSuffix(msg, ".")
	return Problems{{File: file, Line: line, Col: col, Msg: "syntax error: " + msg}}
}

// buildLines indexes line starts only.
func buildLines(src string) *posIndex {
	ix := &posIndex{lineStarts: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			ix.lineStarts = append(ix.lineStarts, i+1)
		}
	}
	return ix
}

// decoder walks the generic TOML tree against the schema. Every key is
// checked, so an unknown key is always an error; every value's type is
// checked, so a wrong type is never coerced.
type decoder struct {
	probs []problem
}

func (d *decoder) keyf(at keyPath, hint, format string, args ...any) {
	d.probs = append(d.probs, problem{at: at, msg: fmt.Sprintf(format, args...), hint: hint})
}

func (d *decoder) valuef(at keyPath, hint, format string, args ...any) {
	d.probs = append(d.probs, problem{at: at, value: true, msg: fmt.Sprintf(format, args...), hint: hint})
}

func topKeys() []string {
	return []string{"version", "name", "mode", "serial", "file", "exec", "network", "protect"}
}

func (d *decoder) document(doc map[string]any) *Policy {
	p := &Policy{}
	n := 0
	for _, k := range []string{"file", "exec", "network", "protect"} {
		switch v := doc[k].(type) {
		case []map[string]any:
			n += len(v)
		case []any:
			n += len(v)
		}
	}
	p.rules = make([]rule, 0, n)
	for _, k := range sortedKeys(doc) {
		v, at := doc[k], topKey(k)
		switch k {
		case "version":
			if n, ok := d.integer(at, v); ok {
				if n != Version {
					d.valuef(at, fmt.Sprintf("this agent understands version = %d", Version),
						"unsupported policy version %d", n)
				}
				p.version = n
			}
		case "name":
			if s, ok := d.str(at, v); ok {
				d.checkName(at, s)
				p.name = s
			}
		case "mode":
			if s, ok := d.str(at, v); ok {
				p.mode = d.mode(at, s)
			}
		case "serial":
			if n, ok := d.integer(at, v); ok {
				if n < 0 {
					d.valuef(at, "serials count up from 0", "serial must not be negative, got %d", n)
				}
				p.serial = uint64(n)
			}
		case "file":
			p.rules = d.rules(p.rules, KindFile, v)
		case "exec":
			p.rules = d.rules(p.rules, KindExec, v)
		case "network":
			p.rules = d.rules(p.rules, KindNetwork, v)
		case "protect":
			p.rules = d.rules(p.rules, KindProtect, v)
		default:
			d.unknownKey(at, k, topKeys())
		}
	}
	for _, k := range []string{"version", "mode", "serial"} {
		if _, ok := doc[k]; !ok {
			d.keyf(keyPath{i: -1, j: -1}, missingHint(k), "missing required key %q", k)
		}
	}
	return p
}

func missingHint(k string) string {
	switch k {
	case "version":
		return fmt.Sprintf("add version = %d", Version)
	case "mode":
		return `add mode = "audit" or mode = "enforce"`
	case "serial":
		return "add serial = N, a number you increase with every release of the policy"
	case "id":
		return `add id = "...", a stable name used in events and metrics`
	}
	return "add " + k + " = ..."
}

func (d *decoder) unknownKey(at keyPath, k string, known []string) {
	hint := "known keys: " + strings.Join(known, ", ")
	if s, ok := suggest(k, known); ok {
		hint = fmt.Sprintf("did you mean %q? %s", s, hint)
	}
	d.keyf(at, hint, "unknown key %q", k)
}

func (d *decoder) mode(at keyPath, s string) Mode {
	m, ok := parseMode(s)
	if !ok {
		hint := "use " + choices("audit", "enforce")
		if c, ok := suggest(s, []string{"audit", "enforce"}); ok {
			hint = fmt.Sprintf("did you mean %q?", c)
		}
		d.valuef(at, hint, "mode %q is not valid", s)
	}
	return m
}

func (d *decoder) checkName(at keyPath, s string) {
	switch {
	case len(s) > MaxNameLen:
		d.valuef(at, "shorten it", "name is %d bytes long, the limit is %d", len(s), MaxNameLen)
	case hasControl(s):
		d.valuef(at, "", "name contains a control character")
	}
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
