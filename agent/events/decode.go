package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/aegisbpf/aegisbpf/bpf"
)

// RecordSize is the size in bytes of struct event (bpf/abi.h), the smallest
// record Decode accepts. TestLayout checks it and every offset below against
// the bpf2go-generated bpf.AegisEvent.
const RecordSize = 344

// Byte offsets of the fields of struct event.
const (
	offTimeNs   = 0
	offCgroupID = 8
	offIno      = 16
	offDev      = 24
	offPid      = 28
	offTgid     = 32
	offPpid     = 36
	offUID      = 40
	offRule     = 44
	offHook     = 48
	offAction   = 49
	offAccess   = 50
	offFamily   = 51
	offPort     = 52
	offProtocol = 54
	offAddr     = 56
	offComm     = 72
	offPath     = 88
)

// ErrShortRecord is wrapped by Decode's error for a record smaller than
// RecordSize.
var ErrShortRecord = errors.New("short event record")

// Decode fills e from raw, a struct event as the BPF programs submit it to
// the ring buffer, with explicit little-endian reads. Bytes beyond
// RecordSize are ignored, so a later ABI may append fields. Decode does not allocate and does not retain raw.
func Decode(raw []byte, e *bpf.AegisEvent) error {
	if len(raw) < RecordSize {
		return fmt.Errorf("decoding event: %d bytes, want %d: %w", len(raw), RecordSize, ErrShortRecord)
	}
	raw = raw[:RecordSize:RecordSize]
	le := binary.LittleEndian
	e.TimeNs = le.Uint64(raw[offTimeNs:])
	e.CgroupId = le.Uint64(raw[offCgroupID:])
	e.Ino = le.Uint64(raw[offIno:])
	e.Dev = le.Uint32(raw[offDev:])
	e.Pid = le.Uint32(raw[offPid:])
	e.Tgid = le.Uint32(raw[offTgid:])
	e.Ppid = le.Uint32(raw[offPpid:])
	e.Uid = le.Uint32(raw[offUID:])
	e.Rule = le.Uint32(raw[offRule:])
	e.Hook = raw[offHook]
	e.Action = raw[offAction]
	e.Access = raw[offAccess]
	e.Family = raw[offFamily]
	e.Port = le.Uint16(raw[offPort:])
	e.Protocol = raw[offProtocol]
	e.Pad0 = raw[offProtocol+1]
	copy(e.Addr[:], raw[offAddr:offComm])
	copy(int8Bytes(e.Comm[:]), raw[offComm:offPath])
	copy(int8Bytes(e.Path[:]), raw[offPath:RecordSize])
	return nil
}

// int8Bytes views a C char array, which bpf2go renders as []int8, as bytes:
// same size, same alignment, so a plain memmove replaces a per-byte loop.
func int8Bytes(s []int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// cstring returns the bytes of a NUL-terminated C string in b, without the
// NUL; all of b when there is none.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
