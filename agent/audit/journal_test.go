package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadJournalValues(t *testing.T) {
	in, err := ReadJournal(strings.NewReader(
		`{"MESSAGE_ID":"ef60429a610b4c96b92c4c9dff7d4d42","AEGIS_ACTION":"audit","AEGIS_RULE":"r","AEGIS_COUNT":"2",` +
			`"AEGIS_PATH":[47,116,109,112,47,255],"AEGIS_COMM":["sh",[98,97,115,104]],"AEGIS_ADDR":null,"_PID":["1","2"]}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := in.Entries[0]
	if e.Path != "/tmp/\xff" || e.Comm != "sh" || e.Count != 2 || e.Line != 1 {
		t.Errorf("entry %+v", e)
	}
}

func TestReadJournalErrors(t *testing.T) {
	ok := `{"MESSAGE_ID":"ef60429a610b4c96b92c4c9dff7d4d42","AEGIS_ACTION":"audit","AEGIS_RULE":"r","AEGIS_COUNT":"1"}`
	for _, tc := range []struct {
		name, line, want string
	}{
		{"not JSON", `{"MESSAGE_ID": "ef60`, `line 3: not a journal entry (a JSON object): unexpected end of JSON input`},
		{"not an object", `["a"]`, `line 3: not a journal entry (a JSON object): json: cannot unmarshal array`},
		{"bad count", strings.Replace(ok, `"1"`, `"12x"`, 1), `line 3: field AEGIS_COUNT: strconv.ParseUint: parsing "12x": invalid syntax`},
		{"negative count", strings.Replace(ok, `"1"`, `"-1"`, 1), `line 3: field AEGIS_COUNT: strconv.ParseUint: parsing "-1": invalid syntax`},
		{"zero count", strings.Replace(ok, `"1"`, `"0"`, 1), `line 3: field AEGIS_COUNT is 0`},
		{"no count", strings.Replace(ok, `,"AEGIS_COUNT":"1"`, ``, 1), `line 3: field AEGIS_COUNT is missing`},
		{"no action", strings.Replace(ok, `"AEGIS_ACTION":"audit",`, ``, 1), `line 3: field AEGIS_ACTION is missing`},
		{"bad time", strings.Replace(ok, `}`, `,"AEGIS_FIRST_USEC":"soon"}`, 1), `line 3: field AEGIS_FIRST_USEC: strconv.ParseUint`},
		{"bad byte", strings.Replace(ok, `}`, `,"AEGIS_PATH":[47,256]}`, 1), `line 3: field AEGIS_PATH: byte 1 of a binary value is 256`},
		{"bad value", strings.Replace(ok, `}`, `,"AEGIS_PATH":{"a":1}}`, 1), `line 3: field AEGIS_PATH: unexpected value {"a":1}`},
		{"nested arrays", strings.Replace(ok, `}`, `,"AEGIS_PATH":[["a"]]}`, 1), `line 3: field AEGIS_PATH: unexpected value ["a"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ReadJournal(strings.NewReader(ok + "\n\n" + tc.line + "\n" + ok + "\n"))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want it to start with %q", err, tc.want)
			}
			if in != nil {
				t.Errorf("a partial input was returned: %+v", in)
			}
		})
	}
}

func TestReadJournalTooLong(t *testing.T) {
	_, err := ReadJournal(strings.NewReader("\n" + strings.Repeat("x", maxLine+1)))
	if err == nil || !strings.HasPrefix(err.Error(), "line 2: longer than") {
		t.Errorf("error %v", err)
	}
}

func TestJournalArgs(t *testing.T) {
	j := &Journal{}
	got := strings.Join(j.Args(90*time.Minute+time.Millisecond), " ")
	want := "-o json --no-pager MESSAGE_ID=ef60429a610b4c96b92c4c9dff7d4d42 MESSAGE_ID=eb6d838a1d3248e4905e910274cce232 --since=-5401s"
	if got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if got := strings.Join(j.Args(0), " "); strings.Contains(got, "--since") {
		t.Errorf("args without since: %q", got)
	}
}

func TestJournalRead(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	script := filepath.Join(dir, "journalctl")
	body := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + args + "\ncat " + filepath.Join("testdata", "journal.jsonl") + "\n"
	wd, _ := os.Getwd()
	body = strings.Replace(body, "cat testdata", "cat "+wd+"/testdata", 1)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	in, err := (&Journal{Command: script, Stderr: &stderr}).Read(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Entries) != 17 || in.NotItemized != 500 || in.Other != 1 {
		t.Errorf("%d entries, %d not itemized, %d other", len(in.Entries), in.NotItemized, in.Other)
	}
	a, _ := os.ReadFile(args)
	if !strings.Contains(string(a), "--since=-3600s\n") {
		t.Errorf("journalctl args:\n%s", a)
	}

	if err := os.WriteFile(script, []byte("#!/bin/sh\necho '{}'\necho 'garbage'\nsleep 10\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = (&Journal{Command: script, Stderr: &stderr}).Read(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), "line 2: not a journal entry") {
		t.Errorf("error %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("a bad line did not stop journalctl")
	}
}

func FuzzReadJournal(f *testing.F) {
	f.Add([]byte(`{"MESSAGE_ID":"ef60429a610b4c96b92c4c9dff7d4d42","AEGIS_ACTION":"audit","AEGIS_RULE":"r","AEGIS_COUNT":"1","AEGIS_PATH":[47]}`))
	f.Add([]byte(`{"MESSAGE_ID":"eb6d838a1d3248e4905e910274cce232","AEGIS_COUNT":"3"}` + "\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ReadJournal(bytes.NewReader(data))
		if err != nil {
			return
		}
		r := Build(in, Options{Cgroups: fakeCgroups{}})
		var b bytes.Buffer
		if err := r.WriteText(&b, 3); err != nil {
			t.Fatal(err)
		}
		_ = Suggest(r)
	})
}
