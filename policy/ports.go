package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ports decodes an array whose elements are port numbers or "LO-HI"
// strings, and returns the ranges sorted and merged.
func (d *decoder) ports(at keyPath, v any) []PortRange {
	elems, ok := d.array(at, "an array of ports", v)
	if !ok {
		return nil
	}
	var out []PortRange
	for j, e := range elems {
		eat := at.elem(j)
		switch e := e.(type) {
		case int64:
			if p, ok := d.port(eat, e, ""); ok {
				out = append(out, PortRange{Lo: p, Hi: p})
			}
		case string:
			if r, ok := d.portRange(eat, e); ok {
				out = append(out, r)
			}
		default:
			d.wrongType(eat, `a port number or a "LO-HI" range`, e, "")
		}
	}
	out = mergePorts(out)
	if len(out) > MaxPortRanges {
		d.valuef(at, "use fewer, wider ranges or split the rule",
			"ports has %d ranges after merging, the limit is %d", len(out), MaxPortRanges)
	}
	return out
}

func (d *decoder) port(at keyPath, n int64, in string) (uint16, bool) {
	what := fmt.Sprintf("port %d", n)
	if in != "" {
		what = fmt.Sprintf("port range %q has port %d, which", in, n)
	}
	switch {
	case n == 0:
		d.valuef(at, "ports are 1-65535; leave ports out to match every port", "%s is not valid", what)
		return 0, false
	case n < 0 || n > 65535:
		d.valuef(at, "ports are 1-65535", "%s is out of range", what)
		return 0, false
	}
	return uint16(n), true
}

func (d *decoder) portRange(at keyPath, s string) (PortRange, bool) {
	loS, hiS, ok := strings.Cut(s, "-")
	lo, err1 := strconv.ParseInt(loS, 10, 64)
	hi, err2 := strconv.ParseInt(hiS, 10, 64)
	if !ok || err1 != nil || err2 != nil || !plainDigits(loS) || !plainDigits(hiS) {
		hint := `write "LO-HI", e.g. "8000-8999"`
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && plainDigits(s) {
			hint = fmt.Sprintf("write a single port without quotes: %d", n)
		}
		d.valuef(at, hint, "port range %q is not LO-HI", s)
		return PortRange{}, false
	}
	l, okL := d.port(at, lo, s)
	h, okH := d.port(at, hi, s)
	if !okL || !okH {
		return PortRange{}, false
	}
	if l > h {
		d.valuef(at, fmt.Sprintf(`write "%d-%d"`, h, l), "port range %q is reversed", s)
		return PortRange{}, false
	}
	return PortRange{Lo: l, Hi: h}, true
}

func plainDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// mergePorts sorts ranges and merges overlapping and adjacent ones.
func mergePorts(rs []PortRange) []PortRange {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b PortRange) int { return cmp.Or(cmp.Compare(a.Lo, b.Lo), cmp.Compare(a.Hi, b.Hi)) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.Lo) <= uint32(last.Hi)+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}
