package vmbench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Tree is the guest's file tree: the probe directory, where the measured
// open reads Allowed beside the protected Denied (so its directory is
// watched, the costlier allow), and the targets of the synthetic rules.
type Tree struct {
	Root    string
	Allowed string
	Denied  string
	Max     int // rules the tree has targets for
}

// filesPerDir keeps directories small, as on a real host.
const filesPerDir = 256

func (t *Tree) filePath(i int) string {
	return filepath.Join(t.Root, "files", fmt.Sprintf("d%04d", i/filesPerDir), fmt.Sprintf("f%03d", i%filesPerDir))
}

func (t *Tree) execPath(i int) string {
	return filepath.Join(t.Root, "exec", fmt.Sprintf("d%04d", i/filesPerDir), fmt.Sprintf("x%03d", i%filesPerDir))
}

// Mix says what Policy puts in a policy of n rules.
const Mix = "one read rule on the probe file, then of the other rules 80% exact-path file rules (read) on files " +
	"in directories of 256, 10% exec rules on exact paths, 10% network rules denying a /24 of 10.0.0.0/8 over TCP " +
	"(rounded down: a policy of 1 rule holds only the probe rule, so its exec and connect hooks are not attached)"

// split is how many file, exec and network rules a policy of n rules
// holds besides the probe rule.
func split(n int) (files, execs, nets int) {
	rest := max(n-1, 0)
	execs, nets = rest/10, rest/10
	return rest - execs - nets, execs, nets
}

// MakeTree creates the probe files and the targets of up to max rules
// under root.
func MakeTree(root string, max int) (*Tree, error) {
	t := &Tree{Root: root, Max: max}
	probe := filepath.Join(root, "probe")
	t.Allowed, t.Denied = filepath.Join(probe, "allowed"), filepath.Join(probe, "denied")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return nil, err
	}
	for _, p := range []string{t.Allowed, t.Denied} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			return nil, err
		}
	}
	files, execs, _ := split(max)
	for _, kind := range []struct {
		n    int
		path func(int) string
	}{{files, t.filePath}, {execs, t.execPath}} {
		for i := range kind.n {
			p := kind.path(i)
			if i%filesPerDir == 0 {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return nil, err
				}
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, err
			}
			f.Close()
		}
	}
	return t, nil
}

// Policy returns a policy of n rules (see Mix) in mode.
func (t *Tree) Policy(n int, mode string, serial uint64) ([]byte, error) {
	if n < 1 || n > t.Max {
		return nil, fmt.Errorf("a policy of %d rules: the tree has targets for 1 to %d", n, t.Max)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "version = 1\nname = \"bench-%d\"\nmode = %q\nserial = %d\n\n", n, mode, serial)
	fmt.Fprintf(&b, "[[file]]\nid = \"probe\"\npaths = [%q]\naccess = \"read\"\n\n", t.Denied)
	files, execs, nets := split(n)
	for i := range files {
		fmt.Fprintf(&b, "[[file]]\nid = \"f%d\"\npaths = [%q]\naccess = \"read\"\n\n", i, t.filePath(i))
	}
	for i := range execs {
		fmt.Fprintf(&b, "[[exec]]\nid = \"x%d\"\npaths = [%q]\n\n", i, t.execPath(i))
	}
	for i := range nets {
		fmt.Fprintf(&b, "[[network]]\nid = \"n%d\"\ncidrs = [\"10.%d.%d.0/24\"]\nprotocol = \"tcp\"\n\n", i, i/256%256, i%256)
	}
	return b.Bytes(), nil
}
