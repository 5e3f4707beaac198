package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/audit"
	"github.com/aegisbpf/aegisbpf/agent/events"
)

// eventsCommand returns `aegisbpf events`: the agent's aggregated events,
// read back from the systemd journal with journalctl (sdjournal needs cgo,
// and the binary is static).
func eventsCommand() *Command {
	return &Command{
		Name:    "events",
		Summary: "show the agent's security events from the journal",
		Run: func(ctx context.Context, env *Env, args []string) error {
			return runEvents(ctx, env, args, "journalctl")
		},
	}
}

func runEvents(ctx context.Context, env *Env, args []string, journalctl string) error {
	fs := NewFlagSet(env, "events", "aegisbpf events [--follow] [--json] [--since DURATION] [--lines N]")
	follow := fs.Bool("follow", false, "keep printing new events as they are written")
	asJSON := fs.Bool("json", false, "print one JSON object per line (the shape of the agent's --events-json)")
	since := fs.Duration("since", 0, "only events of the last DURATION (e.g. 10m, 24h)")
	lines := fs.Int("lines", -1, "only the last N events (default: all, or 10 with --follow)")
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return Usagef("events takes no arguments")
	}
	if *since < 0 {
		return Usagef("events: --since must be positive")
	}
	jargs := []string{"--output=json", "--no-pager", "--quiet"}
	if *follow {
		jargs = append(jargs, "--follow")
	}
	if *since > 0 {
		jargs = append(jargs, "--since=@"+strconv.FormatInt(time.Now().Add(-*since).Unix(), 10))
	}
	if *lines >= 0 {
		jargs = append(jargs, "--lines="+strconv.Itoa(*lines))
	}
	// Two matches on one field are alternatives for journalctl.
	jargs = append(jargs, "MESSAGE_ID="+events.MessageID, "MESSAGE_ID="+events.MessageIDOverflow)

	cmd := exec.CommandContext(ctx, journalctl, jargs...)
	cmd.Stderr = env.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running journalctl (events are read from the systemd journal): %w", err)
	}
	bad, perr := printJournalEvents(out, env.Stdout, *asJSON)
	werr := cmd.Wait()
	if bad > 0 {
		fmt.Fprintf(env.Stderr, "aegisbpf: %d journal entries could not be read as events\n", bad)
	}
	if ctx.Err() != nil {
		return nil // interrupted while following
	}
	if perr != nil {
		return perr
	}
	if werr != nil {
		return fmt.Errorf("journalctl: %w", werr)
	}
	return nil
}

// printJournalEvents reads `journalctl -o json` lines from r and prints
// them; it returns how many lines were not events.
func printJournalEvents(r io.Reader, w io.Writer, asJSON bool) (bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		fields, err := audit.JournalFields(line)
		if err != nil {
			bad++
			continue
		}
		rec, err := events.RecordFromJournal(fields)
		if err != nil {
			bad++
			continue
		}
		if asJSON {
			if err := enc.Encode(&rec); err != nil {
				return bad, err
			}
			continue
		}
		t := rec.First
		if t.IsZero() {
			t = journalTime(fields)
		}
		if _, err := fmt.Fprintf(w, "%s %s\n", t.Local().Format(time.RFC3339), rec.Message()); err != nil {
			return bad, err
		}
	}
	return bad, sc.Err()
}

// journalTime is the entry's __REALTIME_TIMESTAMP.
func journalTime(f map[string]string) time.Time {
	us, err := strconv.ParseInt(f["__REALTIME_TIMESTAMP"], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(us)
}
