package events

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/aegisbpf/aegisbpf/bpf"
)

func TestLayout(t *testing.T) {
	var e bpf.AegisEvent
	if got := unsafe.Sizeof(e); got != RecordSize {
		t.Fatalf("sizeof(bpf.AegisEvent) = %d, RecordSize = %d: bpf/abi.h changed, update decode.go", got, RecordSize)
	}
	for _, c := range []struct {
		name string
		got  uintptr
		want int
	}{
		{"TimeNs", unsafe.Offsetof(e.TimeNs), offTimeNs},
		{"CgroupId", unsafe.Offsetof(e.CgroupId), offCgroupID},
		{"Ino", unsafe.Offsetof(e.Ino), offIno},
		{"Dev", unsafe.Offsetof(e.Dev), offDev},
		{"Pid", unsafe.Offsetof(e.Pid), offPid},
		{"Tgid", unsafe.Offsetof(e.Tgid), offTgid},
		{"Ppid", unsafe.Offsetof(e.Ppid), offPpid},
		{"Uid", unsafe.Offsetof(e.Uid), offUID},
		{"Rule", unsafe.Offsetof(e.Rule), offRule},
		{"Hook", unsafe.Offsetof(e.Hook), offHook},
		{"Action", unsafe.Offsetof(e.Action), offAction},
		{"Access", unsafe.Offsetof(e.Access), offAccess},
		{"Family", unsafe.Offsetof(e.Family), offFamily},
		{"Port", unsafe.Offsetof(e.Port), offPort},
		{"Protocol", unsafe.Offsetof(e.Protocol), offProtocol},
		{"Addr", unsafe.Offsetof(e.Addr), offAddr},
		{"Comm", unsafe.Offsetof(e.Comm), offComm},
		{"Path", unsafe.Offsetof(e.Path), offPath},
	} {
		if int(c.got) != c.want {
			t.Errorf("offset of %s = %d, decode.go says %d", c.name, c.got, c.want)
		}
	}
	if got := unsafe.Sizeof(Key{}); got != 328 {
		t.Errorf("sizeof(Key) = %d, want 328 (no implicit padding)", got)
	}
}

// TestNamesMatchABI checks the enum values of names.go against bpf/abi.h.
func TestNamesMatchABI(t *testing.T) {
	src, err := os.ReadFile("../../bpf/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	abi := map[string]uint64{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(AEGIS_[A-Z_]+)\s*=\s*(\d+)`).FindAllSubmatch(src, -1) {
		v, _ := strconv.ParseUint(string(m[2]), 10, 64)
		abi[string(m[1])] = v
	}
	for _, m := range regexp.MustCompile(`(?m)^#define\s+(AEGIS_[A-Z_]+)\s+(0x[0-9a-f]+|\d+)u?$`).FindAllSubmatch(src, -1) {
		v, _ := strconv.ParseUint(string(m[2]), 0, 64)
		abi[string(m[1])] = v
	}
	want := map[string]uint64{
		"AEGIS_HOOK_FILE_OPEN": uint64(HookFileOpen), "AEGIS_HOOK_EXEC": uint64(HookExec),
		"AEGIS_HOOK_MMAP_EXEC": uint64(HookMmapExec), "AEGIS_HOOK_MPROTECT_EXEC": uint64(HookMprotectExec),
		"AEGIS_HOOK_RENAME": uint64(HookRename), "AEGIS_HOOK_UNLINK": uint64(HookUnlink),
		"AEGIS_HOOK_LINK":    uint64(HookLink),
		"AEGIS_HOOK_PROTECT": uint64(HookProtect), "AEGIS_HOOK_CONNECT": uint64(HookConnect),
		"AEGIS_HOOK_SENDMSG": uint64(HookSendmsg), "AEGIS_HOOK_SIGNAL": uint64(HookSignal),
		"AEGIS_HOOK_BPF": uint64(HookBPF), "AEGIS_HOOK_UMOUNT": uint64(HookUmount),
		"AEGIS_PROTECT_PTRACE": uint64(ProtectPtrace), "AEGIS_PROTECT_MODULE_LOAD": uint64(ProtectModuleLoad),
		"AEGIS_PROTECT_AGENT": uint64(ProtectAgent),
		"AEGIS_HOOK_MAX":      uint64(HookMax),
		"AEGIS_ACTION_ALLOW":  uint64(ActionAllow), "AEGIS_ACTION_DENY": uint64(ActionDeny),
		"AEGIS_ACTION_AUDIT": uint64(ActionAudit), "AEGIS_ACTION_UNRESOLVED": uint64(ActionUnresolved),
		"AEGIS_ACTION_MAX":  uint64(ActionMax),
		"AEGIS_ACCESS_READ": uint64(AccessRead), "AEGIS_ACCESS_WRITE": uint64(AccessWrite),
		"AEGIS_ACCESS_EXEC": uint64(AccessExec), "AEGIS_ACCESS_MAX": uint64(AccessMax),
		"AEGIS_STAT_RINGBUF_DROPS": uint64(StatRingbufDrops), "AEGIS_STAT_UNRESOLVED": uint64(StatUnresolved),
		"AEGIS_STAT_MAX": uint64(StatMax),
		"AEGIS_NO_RULE":  uint64(NoRule),
	}
	for name, v := range want {
		got, ok := abi[name]
		if !ok {
			t.Errorf("%s not found in abi.h", name)
		} else if got != v {
			t.Errorf("%s = %d in abi.h, %d in names.go", name, got, v)
		}
	}
	for name := range abi {
		if _, ok := want[name]; !ok && regexp.MustCompile(`^AEGIS_(HOOK|ACTION|ACCESS)_`).MatchString(name) {
			t.Errorf("abi.h has %s, names.go does not", name)
		}
	}
}

func TestDecode(t *testing.T) {
	want := sample("cat", "/etc/shadow", 123456789)
	want.Family, want.Port, want.Protocol = 10, 443, 6
	want.Addr = [16]uint8{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	raw := encode(&want)

	t.Run("exact", func(t *testing.T) {
		var got bpf.AegisEvent
		if err := Decode(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("Decode = %+v\nwant %+v", got, want)
		}
		v := View(&got)
		if v.CommString() != "cat" || v.PathString() != "/etc/shadow" || v.HookName() != "file_open" ||
			v.ActionName() != "deny" || v.AccessName() != "read" || v.RuleID([]string{"r0"}) != "r0" {
			t.Errorf("view: %q %q %q %q %q %q", v.CommString(), v.PathString(), v.HookName(), v.ActionName(), v.AccessName(), v.RuleID([]string{"r0"}))
		}
		if ap, ok := v.AddrPort(); !ok || ap.String() != "[2001:db8::1]:443" {
			t.Errorf("AddrPort = %v, %v", ap, ok)
		}
	})
	t.Run("longer record", func(t *testing.T) {
		var got bpf.AegisEvent
		if err := Decode(append(bytes.Clone(raw), 1, 2, 3, 4, 5, 6, 7, 8), &got); err != nil || got != want {
			t.Fatalf("Decode of a padded record: %v, %+v", err, got)
		}
	})
	t.Run("short record", func(t *testing.T) {
		var got bpf.AegisEvent
		for _, n := range []int{0, 1, RecordSize - 1} {
			if err := Decode(raw[:n], &got); !errors.Is(err, ErrShortRecord) {
				t.Errorf("Decode(%d bytes) = %v, want ErrShortRecord", n, err)
			}
		}
	})
	t.Run("unknown enum values", func(t *testing.T) {
		e := want
		e.Hook, e.Action, e.Access, e.Rule = 200, 200, 200, NoRule
		v := View(&e)
		if v.HookName() != "unknown" || v.ActionName() != "unknown" || v.AccessName() != "unknown" || v.RuleID(nil) != "" {
			t.Errorf("unknown values named %q %q %q %q", v.HookName(), v.ActionName(), v.AccessName(), v.RuleID(nil))
		}
		e.Rule = 7
		if got := View(&e).RuleID([]string{"a"}); got != "#7" {
			t.Errorf("out-of-range rule = %q", got)
		}
	})
	t.Run("path without NUL", func(t *testing.T) {
		e := want
		for i := range e.Path {
			e.Path[i] = 'a'
		}
		var got bpf.AegisEvent
		if err := Decode(encode(&e), &got); err != nil || len(View(&got).PathString()) != len(e.Path) {
			t.Fatalf("full path: %v, %d bytes", err, len(View(&got).PathString()))
		}
	})
}

func FuzzDecode(f *testing.F) {
	e := sample("cat", "/etc/shadow", 1)
	f.Add(encode(&e))
	f.Add([]byte{})
	f.Add(make([]byte, RecordSize-1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got bpf.AegisEvent
		err := Decode(raw, &got)
		if len(raw) < RecordSize {
			if !errors.Is(err, ErrShortRecord) {
				t.Fatalf("Decode(%d bytes) = %v, want ErrShortRecord", len(raw), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(%d bytes): %v", len(raw), err)
		}
		if back := encode(&got); !bytes.Equal(back, raw[:RecordSize]) {
			t.Fatalf("round trip differs:\n%x\n%x", back, raw[:RecordSize])
		}
		// The views and the aggregation key must cope with any bytes.
		v := View(&got)
		_ = v.CommString() + v.PathString() + v.HookName() + v.ActionName() + v.AccessName()
		_, _ = v.AddrPort()
		var k Key
		if n := setKey(&k, &got); n != len(v.PathString()) {
			t.Fatalf("setKey path length %d, PathString %d bytes", n, len(v.PathString()))
		}
		if !reflect.DeepEqual(k.pad, [5]byte{}) {
			t.Fatal("key padding set")
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	e := sample("cat", "/etc/shadow", 1)
	raw := encode(&e)
	var got bpf.AegisEvent
	b.ReportAllocs()
	b.SetBytes(RecordSize)
	for b.Loop() {
		if err := Decode(raw, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	e := sample("cat", "/etc/shadow", 1)
	raw := encode(&e)
	var got bpf.AegisEvent
	if n := testing.AllocsPerRun(1000, func() { _ = Decode(raw, &got) }); n != 0 {
		t.Fatalf("Decode allocates %v times per call", n)
	}
}
