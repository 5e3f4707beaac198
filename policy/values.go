package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Typed access to the generic TOML tree. Each getter reports a wrong type
// at the value's position and returns ok=false.

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// describe names a TOML value's type, with the value when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			return fmt.Sprintf("a string %q...", v[:40])
		}
		return fmt.Sprintf("a string %q", v)
	case int64:
		return fmt.Sprintf("an integer %d", v)
	case float64:
		return "a float " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return fmt.Sprintf("a boolean %t", v)
	case time.Time:
		return "a datetime"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

func (d *decoder) wrongType(at keyPath, want string, v any, hint string) {
	d.valuef(at, hint, "%s must be %s, not %s", at.localName(), want, describe(v))
}

func (d *decoder) str(at keyPath, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		hint := ""
		if n, isInt := v.(int64); isInt {
			hint = fmt.Sprintf(`quote it: "%d"`, n)
		}
		d.wrongType(at, "a string", v, hint)
	}
	return s, ok
}

func (d *decoder) integer(at keyPath, v any) (int64, bool) {
	n, ok := v.(int64)
	if !ok {
		hint := ""
		if s, isStr := v.(string); isStr {
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				hint = "remove the quotes: " + s
			}
		}
		d.wrongType(at, "an integer", v, hint)
	}
	return n, ok
}

func (d *decoder) boolean(at keyPath, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		d.wrongType(at, "a boolean", v, "write true or false, without quotes")
	}
	return b, ok
}

// array returns the elements of an array value.
func (d *decoder) array(at keyPath, want string, v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case []map[string]any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = e
		}
		return out, true
	}
	hint := ""
	if s, ok := v.(string); ok {
		hint = fmt.Sprintf("write %s = [%q]", quoteKey(at.field), s)
	}
	d.wrongType(at, want, v, hint)
	return nil, false
}

// strings returns the string elements of an array, each with its index;
// elements of another type are reported and left out. ok is false when v
// is not an array at all.
func (d *decoder) strings(at keyPath, v any) ([]target, bool) {
	elems, ok := d.array(at, "an array of strings", v)
	if !ok {
		return nil, false
	}
	out := make([]target, 0, len(elems))
	for j, e := range elems {
		if s, ok := d.str(at.elem(j), e); ok {
			out = append(out, target{s: s, j: j})
		}
	}
	return out, true
}
