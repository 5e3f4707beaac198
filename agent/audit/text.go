package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// WriteJSON writes r as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteText writes r for people: a summary, then one block per rule. top
// bounds each list of a block (0: no bound); what is left out is counted.
func (r *Report) WriteText(w io.Writer, top int) error {
	bw := bufio.NewWriter(w)
	window := "all events in the input"
	if r.Since != "" {
		window = "last " + r.Since
	}
	fmt.Fprintf(bw, "AegisBPF audit report: %s, %s\n", r.Source, window)
	if r.First.IsZero() {
		fmt.Fprintf(bw, "Events:   none\n")
	} else {
		fmt.Fprintf(bw, "Events:   %s to %s\n", stamp(r.First), stamp(r.Last))
	}
	fmt.Fprintf(bw, "Would block (audit): %d in %d %s\n", r.WouldBlock, len(r.Rules), plural(len(r.Rules), "rule"))
	fmt.Fprintf(bw, "Denied (enforce):    %d", r.Denied)
	for i, g := range r.DeniedRules {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(bw, "%s%s %d", sep, g.Name, g.Count)
		if i == len(r.DeniedRules)-1 {
			bw.WriteString(")")
		}
	}
	bw.WriteString("\n")
	if r.Unresolved > 0 {
		fmt.Fprintf(bw, "Unresolved objects:  %d\n", r.Unresolved)
	}
	if r.NotItemized > 0 {
		fmt.Fprintf(bw, "Not itemized:        %d events the agent counted but did not describe (not in this report)\n", r.NotItemized)
	}
	if r.Decisions != nil {
		fmt.Fprintf(bw, "Agent counters:      %d decisions since the applied policy was loaded\n", *r.Decisions)
	} else {
		fmt.Fprintf(bw, "Agent counters:      unavailable (%s): no shares of decisions\n", r.CountersUnavailable)
	}
	for i := range r.Rules {
		bw.WriteString("\n")
		r.Rules[i].writeText(bw, top)
	}
	return bw.Flush()
}

func (rr *RuleReport) writeText(w *bufio.Writer, top int) {
	fmt.Fprintf(w, "rule %s: %d would-block %s (%s), %s to %s\n", rr.Rule, rr.WouldBlock,
		plural64(rr.WouldBlock, "event"), strings.Join(rr.Hooks, ", "), stamp(rr.First), stamp(rr.Last))
	if s := rr.Share; s != nil && s.WouldBlock == 0 {
		fmt.Fprintf(w, "  share of decisions: none counted by the running agent (not in its policy, or counters reset since)\n")
	} else if s != nil {
		fmt.Fprintf(w, "  share of decisions: %s (%d of %d, agent counters)\n", percent(s.Percent), s.WouldBlock, s.Decisions)
	} else {
		fmt.Fprintf(w, "  share of decisions: agent counters unavailable\n")
	}
	writeGroups(w, "objects", rr.Objects, top)
	fmt.Fprintf(w, "  cgroups:\n")
	for i, c := range rr.Cgroups {
		if top > 0 && i == top {
			fmt.Fprintf(w, "    ... %d more\n", len(rr.Cgroups)-top)
			break
		}
		fmt.Fprintf(w, "    %8d  %s  %s  %s: %s\n", c.Count, stamp(c.First), stamp(c.Last), c.Cgroup, binaries(c.Binaries, 5))
	}
	writeGroups(w, "binaries", rr.Binaries, top)
}

func writeGroups(w *bufio.Writer, title string, gs []Group, top int) {
	fmt.Fprintf(w, "  %s:\n", title)
	for i, g := range gs {
		if top > 0 && i == top {
			fmt.Fprintf(w, "    ... %d more\n", len(gs)-top)
			return
		}
		fmt.Fprintf(w, "    %8d  %s  %s  %s\n", g.Count, stamp(g.First), stamp(g.Last), printable(g.Name))
	}
}

// binaries lists at most n binaries with their counts: "sshd 10, cron 2".
func binaries(gs []Group, n int) string {
	var parts []string
	for i, g := range gs {
		if i == n {
			parts = append(parts, fmt.Sprintf("%d more", len(gs)-n))
			break
		}
		parts = append(parts, printable(g.Name)+" "+strconv.FormatUint(g.Count, 10))
	}
	return strings.Join(parts, ", ")
}

// stamp formats a time in UTC to the second; "-" for an unknown time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// percent formats a share with enough digits for the 0.01% target.
func percent(p float64) string {
	if p == 0 {
		return "0%"
	}
	prec := 2
	if p < 1 {
		prec = min(int(2-math.Floor(math.Log10(p))), 10)
	}
	return strconv.FormatFloat(p, 'f', prec, 64) + "%"
}

// printable quotes a name that holds spaces or characters a terminal
// would interpret.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func plural64(n uint64, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
