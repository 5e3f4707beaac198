package tools

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
)

// Version is a program's release number.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// parseVersion finds the first match of re (three groups, the last
// optional) in out.
func parseVersion(re *regexp.Regexp, out []byte) (Version, error) {
	m := re.FindSubmatch(out)
	if m == nil {
		return Version{}, errors.New("no version number in its output")
	}
	var v Version
	v.Major, _ = strconv.Atoi(string(m[1]))
	v.Minor, _ = strconv.Atoi(string(m[2]))
	if len(m[3]) > 0 {
		v.Patch, _ = strconv.Atoi(string(m[3]))
	}
	return v, nil
}

// program is a located program with a checked version.
type program struct {
	path    string
	version Version
}

// find locates name on PATH, runs it with versionArgs (ignoring its exit
// status: some releases print their version and then reject the option),
// and checks the version against min.
func find(ctx context.Context, name, pkg string, re *regexp.Regexp, min Version, versionArgs ...string) (program, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return program{}, fmt.Errorf("finding %s (Debian package %s): %w", name, pkg, err)
	}
	out, runErr := run(ctx, nil, path, versionArgs...)
	v, err := parseVersion(re, out)
	var ce *CommandError
	if err != nil && errors.As(runErr, &ce) {
		v, err = parseVersion(re, []byte(ce.Stderr))
	}
	if err != nil {
		if runErr != nil {
			return program{}, fmt.Errorf("reading the version of %s: %w", path, runErr)
		}
		return program{}, fmt.Errorf("reading the version of %s: %w", path, err)
	}
	if v.Less(min) {
		return program{}, fmt.Errorf("%s at %s is version %s, need %s or newer (Debian package %s)", name, path, v, min, pkg)
	}
	return program{path: path, version: v}, nil
}
