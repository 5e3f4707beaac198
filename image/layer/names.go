package layer

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// ExtensionName is the systemd-sysext name of the layer. The host must
// present the mounted image as /run/extensions/aegisbpf (or another
// extension directory under that name): systemd-sysext only accepts
// extension-release.<name> when <name> is the image's name.
const ExtensionName = "aegisbpf"

const (
	filePrefix     = ExtensionName + "_"
	erofsSuffix    = ".erofs"
	veritySuffix   = ".verity"
	manifestSuffix = ".manifest.json"
	sigSuffix      = ".manifest.sig"
)

// versionRE is what a layer version may look like: it becomes part of file
// names and of IMAGE_VERSION= in extension-release, whose syntax allows
// lower-case letters, digits, ".", "_" and "-".
var versionRE = regexp.MustCompile(`^[0-9a-z][0-9a-z._-]{0,63}$`)

// CheckVersion reports whether v can be a layer version.
func CheckVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q: want 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", v)
	}
	return nil
}

// ErofsName is the file name of the erofs image of version v.
func ErofsName(v string) string { return filePrefix + v + erofsSuffix }

// VerityName is the file name of the hash tree of version v.
func VerityName(v string) string { return filePrefix + v + veritySuffix }

// ManifestName is the file name of the manifest of version v.
func ManifestName(v string) string { return filePrefix + v + manifestSuffix }

// SignatureName is the file name of the manifest signature of version v.
func SignatureName(v string) string { return filePrefix + v + sigSuffix }

// versionOfManifest returns the version a manifest file name carries.
func versionOfManifest(path string) (string, error) {
	base := filepath.Base(path)
	v, ok := strings.CutPrefix(base, filePrefix)
	if ok {
		v, ok = strings.CutSuffix(v, manifestSuffix)
	}
	if !ok || CheckVersion(v) != nil {
		return "", fmt.Errorf("manifest file name %q is not %s<version>%s", base, filePrefix, manifestSuffix)
	}
	return v, nil
}

// SignaturePath is the signature sidecar of the manifest at path: the same
// directory and version, ".manifest.sig" for ".manifest.json". There is no
// other place a signature is looked for.
func SignaturePath(manifestPath string) (string, error) {
	v, err := versionOfManifest(manifestPath)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(manifestPath), SignatureName(v)), nil
}

// FindManifest returns the path of the one aegisbpf_*.manifest.json in dir.
// None, or more than one, is an error.
func FindManifest(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("finding the layer manifest: %w", err)
	}
	var found []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filePrefix) && strings.HasSuffix(e.Name(), manifestSuffix) {
			found = append(found, e.Name())
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("finding the layer manifest: no %s*%s in %s: %w", filePrefix, manifestSuffix, dir, os.ErrNotExist)
	case 1:
		return filepath.Join(dir, found[0]), nil
	default:
		return "", fmt.Errorf("finding the layer manifest: %d manifests in %s (%s): name one", len(found), dir, strings.Join(found, ", "))
	}
}

// checkPlainName reports whether name is a plain file name: no directory
// part, no "." or "..", nothing a path could be built from.
func checkPlainName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a plain file name", name)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0):
		return fmt.Errorf("%q is not a plain file name (it contains a path separator or NUL)", name)
	case !utf8.ValidString(name) || len(name) > 255:
		return fmt.Errorf("%q is not a plain file name (invalid UTF-8 or longer than 255 bytes)", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("%q is not a plain file name (it starts with a dot)", name)
	}
	return nil
}
