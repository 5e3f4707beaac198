// Command perfdoc replaces one generated section of a markdown file with
// its standard input (package perfdoc): make bench uses it so that each
// benchmark rewrites only its own part of docs/PERFORMANCE.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aegisbpf/aegisbpf/tests/perfdoc"
)

func main() {
	file := flag.String("file", "docs/PERFORMANCE.md", "the markdown `FILE`")
	section := flag.String("section", "", "the section `NAME` (<!-- NAME:begin --> ... <!-- NAME:end -->)")
	flag.Parse()
	body, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = perfdoc.ReplaceFile(*file, *section, body)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "perfdoc: %v\n", err)
		os.Exit(1)
	}
}
