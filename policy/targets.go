package policy

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
)

// InodeRef names a file by device and inode, as printed by
// stat -c '%Hd:%Ld:%i'.
type InodeRef struct {
	Major uint32 `json:"major"`
	Minor uint32 `json:"minor"`
	Ino   uint64 `json:"ino"`
}

// KernelDev returns the device number as the kernel encodes it in a super
// block's s_dev (MAJOR<<20 | MINOR), which is what BPF programs see.
func (r InodeRef) KernelDev() uint32 { return r.Major<<20 | r.Minor }

func (r InodeRef) String() string { return fmt.Sprintf("%d:%d:%d", r.Major, r.Minor, r.Ino) }

// PortRange is an inclusive range of ports, 1 <= Lo <= Hi <= 65535.
type PortRange struct {
	Lo uint16 `json:"lo"`
	Hi uint16 `json:"hi"`
}

func (d *decoder) checkID(at keyPath, s string) {
	const hint = "use a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
	switch {
	case s == "":
		d.valuef(at, hint, "id is empty")
	case len(s) > MaxIDLen:
		d.valuef(at, "shorten it", "id %q is %d bytes long, the limit is %d", s, len(s), MaxIDLen)
	case !validID(s):
		d.valuef(at, hint, "id %q is not valid", s)
	}
}

func validID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

type pathKind int

const (
	pathExact   pathKind = iota // a file: no trailing slash
	pathSubtree                 // a directory: a trailing slash is allowed and dropped
	pathCgroup                  // a cgroup, relative to the cgroup2 root
)

// paths decodes an array of absolute, canonical paths. noun names one
// element in messages.
func (d *decoder) paths(at keyPath, v any, noun string, kind pathKind) []target {
	elems, ok := d.strings(at, v)
	if !ok {
		return nil
	}
	out := elems[:0]
	var first seen[string]
	for _, e := range elems {
		p, ok := d.path(at.elem(e.j), noun, e.s, kind)
		if !ok {
			continue
		}
		if j, dup := first.add(p, e.j); dup {
			d.dup(at.elem(e.j), at.elem(j), "%s %q is listed twice", noun, p)
			continue
		}
		out = append(out, target{s: p, j: e.j})
	}
	return out
}

func (d *decoder) dup(at, first keyPath, format string, args ...any) {
	d.probs = append(d.probs, problem{at: at, value: true, msg: fmt.Sprintf(format, args...),
		hint: "first at {ref}; remove one", ref: first, hasRef: true})
}

// path checks one path and returns its normalized form.
func (d *decoder) path(at keyPath, noun, s string, kind pathKind) (string, bool) {
	bad := func(hint, format string, args ...any) (string, bool) {
		d.valuef(at, hint, format, args...)
		return "", false
	}
	switch {
	case s == "":
		return bad("", "%s is empty", noun)
	case hasControl(s):
		return bad("", "%s %q contains a control character", noun, s)
	case s[0] != '/':
		return bad(fmt.Sprintf("write %q", path.Clean("/"+s)), "%s %q is not absolute", noun, s)
	case len(s) > MaxPathLen:
		return bad("", "%s is %d bytes long, the limit is %d", noun, len(s), MaxPathLen)
	}
	p := s
	if kind == pathSubtree && len(p) > 1 && strings.HasSuffix(p, "/") && !strings.HasSuffix(p, "//") {
		p = p[:len(p)-1]
	}
	if clean := path.Clean(p); clean != p {
		reason := "it ends with \"/\""
		switch {
		case strings.Contains(p, "//"):
			reason = `it contains "//"`
		case slices.Contains(strings.Split(p, "/"), ".."):
			reason = `it contains a ".." element`
		case slices.Contains(strings.Split(p, "/"), "."):
			reason = `it contains a "." element`
		}
		hint := fmt.Sprintf("write %q", clean)
		if kind == pathExact && reason == "it ends with \"/\"" {
			hint += "; to cover a directory and everything below it, use subtrees"
		}
		return bad(hint, "%s %q is not canonical: %s", noun, s, reason)
	}
	limit := MaxComponentLen
	if kind == pathCgroup {
		limit = MaxCgroupNameLen
		if n := strings.Count(p, "/"); n > MaxCgroupDepth {
			return bad("", "%s %q is %d levels deep, the limit is %d", noun, s, n, MaxCgroupDepth)
		}
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > limit {
			return bad("", "%s %q has a component of %d bytes, the limit is %d", noun, s, len(c), limit)
		}
	}
	return p, true
}

func (d *decoder) inodes(at keyPath, v any) []inodeTarget {
	elems, ok := d.strings(at, v)
	if !ok {
		return nil
	}
	var out []inodeTarget
	var first seen[InodeRef]
	for _, e := range elems {
		ref, err := parseInode(e.s)
		if err != "" {
			d.valuef(at.elem(e.j), `write MAJOR:MINOR:INODE as printed by stat -c '%Hd:%Ld:%i', e.g. "259:1:1048577"`,
				"inode %q %s", e.s, err)
			continue
		}
		if j, dup := first.add(ref, e.j); dup {
			d.dup(at.elem(e.j), at.elem(j), "inode %q is listed twice", ref)
			continue
		}
		out = append(out, inodeTarget{ref: ref, j: e.j})
	}
	return out
}

// parseInode parses MAJOR:MINOR:INODE; on failure it says why.
func parseInode(s string) (InodeRef, string) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return InodeRef{}, "is not MAJOR:MINOR:INODE"
	}
	var n [3]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil || p[0] == '+' {
			return InodeRef{}, "is not MAJOR:MINOR:INODE"
		}
		n[i] = v
	}
	switch {
	case n[0] >= 1<<12:
		return InodeRef{}, fmt.Sprintf("has major %d, the largest is %d", n[0], 1<<12-1)
	case n[1] >= 1<<20:
		return InodeRef{}, fmt.Sprintf("has minor %d, the largest is %d", n[1], 1<<20-1)
	case n[2] == 0:
		return InodeRef{}, "has inode 0, which no file has"
	}
	return InodeRef{Major: uint32(n[0]), Minor: uint32(n[1]), Ino: n[2]}, ""
}

func (d *decoder) pids(at keyPath, v any) []pidTarget {
	elems, ok := d.array(at, "an array of integers", v)
	if !ok {
		return nil
	}
	out := make([]pidTarget, 0, len(elems))
	var first seen[int64]
	for j, e := range elems {
		n, ok := d.integer(at.elem(j), e)
		switch {
		case !ok:
		case n < 1 || n > MaxPID:
			d.valuef(at.elem(j), fmt.Sprintf("PIDs are 1-%d", MaxPID), "PID %d is out of range", n)
		default:
			if k, dup := first.add(n, j); dup {
				d.dup(at.elem(j), at.elem(k), "PID %d is listed twice", n)
				continue
			}
			out = append(out, pidTarget{pid: uint32(n), j: j})
		}
	}
	return out
}

// cidrs decodes an array of CIDRs. An IPv4-mapped IPv6 prefix of at least
// /96 is folded into the IPv4 prefix it denotes.
func (d *decoder) cidrs(at keyPath, v any) []cidrTarget {
	elems, ok := d.strings(at, v)
	if !ok {
		return nil
	}
	var out []cidrTarget
	var first seen[netip.Prefix]
	for _, e := range elems {
		p, ok := d.cidr(at.elem(e.j), e.s)
		if !ok {
			continue
		}
		if j, dup := first.add(p, e.j); dup {
			d.dup(at.elem(e.j), at.elem(j), "CIDR %q is listed twice (as %s)", e.s, p)
			continue
		}
		out = append(out, cidrTarget{p: p, j: e.j})
	}
	return out
}

func (d *decoder) cidr(at keyPath, s string) (netip.Prefix, bool) {
	bad := func(hint, format string, args ...any) (netip.Prefix, bool) {
		d.valuef(at, hint, format, args...)
		return netip.Prefix{}, false
	}
	addrPart, bitsPart, hasSlash := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrPart)
	switch {
	case strings.Contains(addrPart, "%"):
		return bad("remove the zone", "CIDR %q has an IPv6 zone", s)
	case err != nil:
		return bad(`e.g. "192.0.2.0/24" or "2001:db8::/32"`, "CIDR %q is not an IP address with a prefix length", s)
	case !hasSlash:
		return bad(fmt.Sprintf("write %q for this one address", fmt.Sprintf("%s/%d", addr, addr.BitLen())),
			"CIDR %q has no prefix length", s)
	}
	bits, err := strconv.Atoi(bitsPart)
	if err != nil || bitsPart[0] == '+' || bitsPart[0] == '-' || (len(bitsPart) > 1 && bitsPart[0] == '0') {
		return bad(fmt.Sprintf("use a decimal number from 0 to %d", addr.BitLen()), "CIDR %q has an invalid prefix length", s)
	}
	if bits > addr.BitLen() {
		return bad(fmt.Sprintf("an %s prefix length is at most %d", family(addr), addr.BitLen()),
			"CIDR %q has prefix length %d", s, bits)
	}
	p := netip.PrefixFrom(addr, bits)
	if m := p.Masked(); m != p {
		return bad(fmt.Sprintf("the network is %q; write that, or %q for the one address", m.String(),
			fmt.Sprintf("%s/%d", addr, addr.BitLen())), "CIDR %q has host bits set", s)
	}
	if addr.Is4In6() && bits >= 96 {
		p = netip.PrefixFrom(addr.Unmap(), bits-96)
	}
	return p, true
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// seen finds repeated values in one array: a linear scan over the few
// values a rule usually has, a map beyond that.
type seen[K comparable] struct {
	keys [8]K
	js   [8]int
	n    int
	m    map[K]int
}

// add records that element j holds k; if an earlier element held k, it
// returns that element's index and true.
func (s *seen[K]) add(k K, j int) (int, bool) {
	if s.m == nil {
		for n := range s.n {
			if s.keys[n] == k {
				return s.js[n], true
			}
		}
		if s.n < len(s.keys) {
			s.keys[s.n], s.js[s.n] = k, j
			s.n++
			return 0, false
		}
		s.m = make(map[K]int, 2*len(s.keys))
		for n := range s.n {
			s.m[s.keys[n]] = s.js[n]
		}
	}
	if first, ok := s.m[k]; ok {
		return first, true
	}
	s.m[k] = j
	return 0, false
}
