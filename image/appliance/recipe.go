package appliance

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Recipe file names, relative to the recipe directory.
const (
	recipeSuite     = "suite"        // the Debian suite, e.g. bookworm
	recipePackages  = "packages"     // packages on top of minbase, one a line
	recipeSources   = "sources.list" // apt sources, one-line format
	recipeCustomize = "customize.sh" // mmdebstrap customize hook
	recipeFiles     = "files"        // tree copied into the root by customize.sh
	recipeCmdline   = "cmdline"      // kernel command line
	recipeMachineID = "machine-id"   // /etc/machine-id of the image
	recipeReadme    = "README.md"
)

// baseInputs are the recipe entries that shape the cached base root, and
// so its cache key. The command line and machine id are applied after the
// cache and do not invalidate it.
var baseInputs = []string{recipeSuite, recipePackages, recipeSources, recipeCustomize, recipeFiles}

// Recipe is a parsed recipe directory.
type Recipe struct {
	Dir       string
	Suite     string
	Packages  []string
	Cmdline   string
	MachineID string // empty: the image boots with an empty /etc/machine-id
}

var (
	suiteRE     = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	packageRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	machineIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// LoadRecipe reads and checks the recipe in dir.
func LoadRecipe(dir string) (*Recipe, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("finding the recipe directory: %w", err)
	}
	r := &Recipe{Dir: abs}
	if err := r.checkEntries(); err != nil {
		return nil, err
	}
	suite, err := r.readLine(recipeSuite)
	if err != nil {
		return nil, err
	}
	if !suiteRE.MatchString(suite) {
		return nil, fmt.Errorf("recipe %s: suite %q is not a Debian suite name", recipeSuite, suite)
	}
	r.Suite = suite
	if r.Packages, err = r.readPackages(); err != nil {
		return nil, err
	}
	if r.Cmdline, err = r.readLine(recipeCmdline); err != nil {
		return nil, err
	}
	if err := checkCmdline(r.Cmdline); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", recipeCmdline, err)
	}
	if _, err := os.Stat(r.path(recipeMachineID)); err == nil {
		if r.MachineID, err = r.readLine(recipeMachineID); err != nil {
			return nil, err
		}
		if !machineIDRE.MatchString(r.MachineID) {
			return nil, fmt.Errorf("recipe %s: %q is not 32 lowercase hex digits", recipeMachineID, r.MachineID)
		}
	}
	for _, name := range []string{recipeSources, recipeCustomize} {
		if fi, err := os.Stat(r.path(name)); err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("recipe %s: %s is missing or not a file", r.Dir, name)
		}
	}
	return r, nil
}

func (r *Recipe) path(name string) string { return filepath.Join(r.Dir, name) }

// checkEntries refuses unknown top-level entries, so that a misspelt file
// name is an error rather than silently ignored.
func (r *Recipe) checkEntries() error {
	ents, err := os.ReadDir(r.Dir)
	if err != nil {
		return fmt.Errorf("reading the recipe: %w", err)
	}
	known := map[string]bool{recipeCmdline: true, recipeMachineID: true, recipeReadme: true}
	for _, n := range baseInputs {
		known[n] = true
	}
	for _, e := range ents {
		if !known[e.Name()] {
			return fmt.Errorf("recipe %s: unknown entry %q", r.Dir, e.Name())
		}
	}
	return nil
}

// readLine returns the one meaningful line of a recipe file: comments
// ('#') and blank lines are ignored, and exactly one line must remain.
func (r *Recipe) readLine(name string) (string, error) {
	lines, err := r.readLines(name)
	if err != nil {
		return "", err
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("recipe %s: want exactly one line, found %d", name, len(lines))
	}
	return lines[0], nil
}

func (r *Recipe) readLines(name string) ([]string, error) {
	data, err := os.ReadFile(r.path(name))
	if err != nil {
		return nil, fmt.Errorf("reading recipe %s: %w", name, err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func (r *Recipe) readPackages() ([]string, error) {
	lines, err := r.readLines(recipePackages)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var pkgs []string
	for _, p := range lines {
		if !packageRE.MatchString(p) {
			return nil, fmt.Errorf("recipe %s: %q is not a package name", recipePackages, p)
		}
		if seen[p] {
			return nil, fmt.Errorf("recipe %s: %s is listed twice", recipePackages, p)
		}
		seen[p] = true
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("recipe %s: no packages", recipePackages)
	}
	return pkgs, nil
}

// checkCmdline requires a root and an lsm= list that enables bpf: an
// appliance without BPF LSM would boot and test nothing.
func checkCmdline(c string) error {
	var lsm string
	var root bool
	for _, f := range strings.Fields(c) {
		if v, ok := strings.CutPrefix(f, "lsm="); ok {
			lsm = v
		}
		if strings.HasPrefix(f, "root=") {
			root = true
		}
	}
	switch {
	case !root:
		return errors.New("no root= parameter")
	case !strings.Contains(","+lsm+",", ",bpf,"):
		return fmt.Errorf("lsm=%q does not enable bpf", lsm)
	}
	return nil
}

// Key returns the cache key of the base root this recipe makes with the
// builder options opts: a SHA-256 over opts and over the path, type,
// permissions and contents of every base input.
func (r *Recipe) Key(opts []string) (string, error) {
	h := sha256.New()
	for _, o := range opts {
		fmt.Fprintf(h, "opt %q\n", o)
	}
	for _, name := range baseInputs {
		root := r.path(name)
		var paths []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			paths = append(paths, p)
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("hashing the recipe: %w", err)
		}
		sort.Strings(paths)
		for _, p := range paths {
			if err := hashEntry(h, r.Dir, p); err != nil {
				return "", fmt.Errorf("hashing the recipe: %w", err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashEntry adds one file to h. Owners, times and permissions other than
// the executable bit are left out: git keeps no more, and a fresh checkout
// must give the same key.
func hashEntry(h io.Writer, dir, p string) error {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		fmt.Fprintf(h, "dir %q\n", filepath.ToSlash(rel))
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "symlink %q %q\n", filepath.ToSlash(rel), t)
	case fi.Mode().IsRegular():
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "file %q %t %d\n", filepath.ToSlash(rel), fi.Mode()&0o111 != 0, len(data))
		h.Write(data)
	default:
		return fmt.Errorf("%s: unsupported file type %s", rel, fi.Mode().Type())
	}
	return nil
}
