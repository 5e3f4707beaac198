package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// canonicalMagic starts the canonical encoding; the version in it changes
// whenever the encoding does.
const canonicalMagic = "aegisbpf-compiled-policy-v1\n"

// digest returns the hex sha256 of c's canonical encoding, which covers
// every field of c except Digest. The encoding (docs/POLICY.md, "Policy
// digest"): integers little-endian of the stated width; a string is a u32
// byte length and the bytes; a list is a u32 count and the elements.
//
//	magic "aegisbpf-compiled-policy-v1\n"
//	i64 version, string name, u8 mode, u64 serial
//	list of rules:       u32 index, string id, u8 kind, u8 mode,
//	                     list of string cgroups, list of string exempt_cgroups
//	list of files:       u32 rule, u8 match, u8 access, string path,
//	                     u32 major, u32 minor, u64 ino
//	list of execs:       u32 rule, u8 match, string path
//	list of net4:        u32 rule, 4 address bytes, u8 prefix length,
//	                     u8 protocol, list of (u16 lo, u16 hi) ports
//	list of net6:        the same with 16 address bytes
//	list of protections: u32 rule, u8 kind, list of u32 exempt PIDs
//	list of string cgroups
func digest(c *Compiled) string {
	e := canonEncoder{h: sha256.New(), buf: make([]byte, 0, 64<<10)}
	e.encode(c)
	return hex.EncodeToString(e.sum())
}

// canonicalEncoding returns the bytes digest hashes; for tests.
func canonicalEncoding(c *Compiled) []byte {
	e := canonEncoder{}
	e.encode(c)
	return e.buf
}

// canonEncoder appends to buf and, when h is set, flushes buf into h
// whenever it fills.
type canonEncoder struct {
	h   hash.Hash
	buf []byte
}

func (e *canonEncoder) encode(c *Compiled) {
	e.raw(canonicalMagic)
	e.u64(uint64(c.Version))
	e.str(c.Name)
	e.u8(uint8(c.Mode))
	e.u64(c.Serial)
	e.u32(uint32(len(c.Rules)))
	for _, r := range c.Rules {
		e.u32(r.Index)
		e.str(r.ID)
		e.u8(uint8(r.Kind))
		e.u8(uint8(r.Mode))
		e.strs(r.Cgroups)
		e.strs(r.ExemptCgroups)
	}
	e.u32(uint32(len(c.Files)))
	for _, f := range c.Files {
		e.u32(f.Rule)
		e.u8(uint8(f.Match))
		e.u8(uint8(f.Access))
		e.str(f.Path)
		e.u32(f.Inode.Major)
		e.u32(f.Inode.Minor)
		e.u64(f.Inode.Ino)
	}
	e.u32(uint32(len(c.Execs)))
	for _, x := range c.Execs {
		e.u32(x.Rule)
		e.u8(uint8(x.Match))
		e.str(x.Path)
	}
	for _, nets := range [][]NetEntry{c.Net4, c.Net6} {
		e.u32(uint32(len(nets)))
		for _, n := range nets {
			e.u32(n.Rule)
			e.raw(string(n.Prefix.Addr().AsSlice()))
			e.u8(uint8(n.Prefix.Bits()))
			e.u8(uint8(n.Protocol))
			e.u32(uint32(len(n.Ports)))
			for _, p := range n.Ports {
				e.u16(p.Lo)
				e.u16(p.Hi)
			}
		}
	}
	e.u32(uint32(len(c.Protections)))
	for _, p := range c.Protections {
		e.u32(p.Rule)
		e.u8(uint8(p.Kind))
		e.u32(uint32(len(p.ExemptPIDs)))
		for _, pid := range p.ExemptPIDs {
			e.u32(pid)
		}
	}
	e.strs(c.Cgroups)
}

func (e *canonEncoder) flush() {
	if e.h != nil && len(e.buf) >= cap(e.buf)-(8<<10) {
		e.h.Write(e.buf)
		e.buf = e.buf[:0]
	}
}

func (e *canonEncoder) sum() []byte {
	e.h.Write(e.buf)
	e.buf = e.buf[:0]
	return e.h.Sum(nil)
}

func (e *canonEncoder) u8(v uint8)   { e.buf = append(e.buf, v) }
func (e *canonEncoder) u16(v uint16) { e.buf = binary.LittleEndian.AppendUint16(e.buf, v) }
func (e *canonEncoder) u32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v); e.flush() }
func (e *canonEncoder) u64(v uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, v) }

func (e *canonEncoder) raw(s string) {
	if e.h != nil && len(s) > 4<<10 {
		e.h.Write(e.buf)
		e.buf = e.buf[:0]
		e.h.Write([]byte(s))
		return
	}
	e.buf = append(e.buf, s...)
	e.flush()
}

func (e *canonEncoder) str(s string) {
	e.u32(uint32(len(s)))
	e.raw(s)
}

func (e *canonEncoder) strs(ss []string) {
	e.u32(uint32(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}
