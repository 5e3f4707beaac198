package update

import (
	"bytes"
	"testing"
	"time"

	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// FuzzParseChannel: whatever the bytes, parsing does not panic, and what
// parses re-encodes to the same bytes and validates; VerifyChannel never
// accepts bytes whose signature it cannot check.
func FuzzParseChannel(f *testing.F) {
	t0 := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	c := Channel{FormatVersion: ChannelFormat, Name: "stable", Serial: 3, Issued: t0, Expires: t0.Add(time.Hour),
		Releases: []Release{{Version: "1.0.0", Serial: 1, Path: "releases/1.0.0", Waves: []Wave{{0.05, &t0}, {1, nil}},
			Files: []File{
				{Name: "aegisbpf_1.0.0.erofs", Size: 1, SHA256: string(bytes.Repeat([]byte("a"), 64))},
				{Name: "aegisbpf_1.0.0.manifest.json", Size: 1, SHA256: string(bytes.Repeat([]byte("b"), 64))},
				{Name: "aegisbpf_1.0.0.manifest.sig", Size: 1, SHA256: string(bytes.Repeat([]byte("c"), 64))},
				{Name: "aegisbpf_1.0.0.verity", Size: 1, SHA256: string(bytes.Repeat([]byte("d"), 64))},
			}}}}
	good, err := c.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format_version":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := VerifyChannel(data, []byte("{}"), keys.Ring{}, t0, nil); err == nil {
			t.Fatal("VerifyChannel accepted a channel with no valid signature")
		}
		c, err := ParseChannel(data)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatalf("a parsed channel does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n%s\n%s", data, again)
		}
	})
}
