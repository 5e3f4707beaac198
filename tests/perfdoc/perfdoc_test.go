package perfdoc

import (
	"strings"
	"testing"
)

func TestReplace(t *testing.T) {
	for _, c := range []struct {
		name, doc, body, want, err string
	}{
		{name: "append to an empty file", doc: "", body: "x", want: "<!-- soak:begin -->\nx\n<!-- soak:end -->\n"},
		{name: "append after text", doc: "# T\n\nintro\n", body: "x\n",
			want: "# T\n\nintro\n\n<!-- soak:begin -->\nx\n<!-- soak:end -->\n"},
		{name: "replace keeps the rest",
			doc:  "a\n<!-- decisions:begin -->\nold d\n<!-- decisions:end -->\nb\n<!-- soak:begin -->\nold\n<!-- soak:end -->\nc\n",
			body: "new\n",
			want: "a\n<!-- decisions:begin -->\nold d\n<!-- decisions:end -->\nb\n<!-- soak:begin -->\nnew\n<!-- soak:end -->\nc\n"},
		{name: "two begin markers", doc: "<!-- soak:begin -->\n<!-- soak:begin -->\n<!-- soak:end -->\n", err: "2 begin and 1 end"},
		{name: "end before begin", doc: "<!-- soak:end -->\n<!-- soak:begin -->\n", err: "end marker comes before"},
	} {
		got, err := Replace([]byte(c.doc), "soak", []byte(c.body))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err == "" && string(got) != c.want:
			t.Errorf("%s:\n%q\nwant\n%q", c.name, got, c.want)
		}
	}
	if _, err := Replace(nil, "Bad Name", nil); err == nil {
		t.Error("a bad section name was accepted")
	}
}
