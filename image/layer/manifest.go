package layer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// FormatVersion is the manifest format this package writes and reads.
const FormatVersion = 1

// Paths inside the layer.
const (
	AgentFile            = "/usr/bin/aegisbpf"
	PolicyFile           = "/usr/share/aegisbpf/policy.toml"
	PolicySignatureFile  = "/usr/share/aegisbpf/policy.toml.sig"
	UnitsDir             = "/usr/lib/systemd/system"
	ExtensionReleaseFile = "/usr/lib/extension-release.d/extension-release." + ExtensionName
)

// Hash tree parameters. Only these are written and accepted.
const (
	VerityHashAlgorithm = "sha256"
	VerityBlockSize     = 4096
)

// Manifest describes one layer. Its JSON encoding is canonical: fields in
// the order below, arrays sorted, two-space indentation, a final newline;
// Marshal produces it and ParseManifest accepts nothing else.
type Manifest struct {
	FormatVersion   int    `json:"format_version"`
	Name            string `json:"name"`
	Version         string `json:"version"`
	Serial          uint64 `json:"serial"`
	SourceDateEpoch int64  `json:"source_date_epoch"`
	// BuildTime is SourceDateEpoch in RFC 3339 UTC, for people.
	BuildTime    string `json:"build_time"`
	Architecture string `json:"architecture"`
	// Artifacts are the erofs image and the hash tree, sorted by name.
	Artifacts    []Artifact `json:"artifacts"`
	Verity       Verity     `json:"verity"`
	ErofsUUID    string     `json:"erofs_uuid"`
	AgentSHA256  string     `json:"agent_sha256"`
	PolicySHA256 string     `json:"policy_sha256"`
	// PolicyDigest is what the policy validator returned for the policy.
	PolicyDigest string `json:"policy_digest"`
	// Files are the regular files inside the image, sorted by path.
	Files []File `json:"files"`
	Tools Tools  `json:"tools"`
}

// Artifact is a file of the layer that sits beside the manifest.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Verity are the dm-verity parameters of the hash tree.
type Verity struct {
	RootHash      string `json:"root_hash"`
	HashAlgorithm string `json:"hash_algorithm"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    uint64 `json:"data_blocks"`
	Salt          string `json:"salt"`
	UUID          string `json:"uuid"`
}

// File is a regular file inside the erofs image.
type File struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"` // octal permission bits, e.g. "0755"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Tools records the versions of the programs that made the layer: the
// same inputs give the same bytes with the same tool versions.
type Tools struct {
	MkfsErofs   string `json:"mkfs_erofs"`
	Veritysetup string `json:"veritysetup"`
}

// maxManifestSize bounds what ParseManifest reads.
const maxManifestSize = 1 << 20

var (
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	uuidRE   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	archRE   = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	digestRE = regexp.MustCompile(`^[\x21-\x7e]{1,256}$`)
	unitRE   = regexp.MustCompile(`^aegisbpf[A-Za-z0-9@._-]*\.(service|socket|timer)$`)
)

// Erofs returns the erofs artifact.
func (m *Manifest) Erofs() Artifact { return m.artifact(erofsSuffix) }

// VerityArtifact returns the hash tree artifact.
func (m *Manifest) VerityArtifact() Artifact { return m.artifact(veritySuffix) }

func (m *Manifest) artifact(suffix string) Artifact {
	for _, a := range m.Artifacts {
		if strings.HasSuffix(a.Name, suffix) {
			return a
		}
	}
	return Artifact{}
}

// File returns the file at path p inside the image.
func (m *Manifest) File(p string) (File, bool) {
	for _, f := range m.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// Marshal validates m and returns its canonical encoding.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m.encode()
}

func (m *Manifest) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	return buf.Bytes(), nil // Encode ends with the newline
}

// ParseManifest decodes a manifest strictly: unknown fields, a second JSON
// value, an invalid field, or any byte that differs from the canonical
// encoding (another field order or spacing, a duplicate key, a key in
// another case) is an error.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the %d allowed", len(data), maxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding manifest: data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	canon, err := m.encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("manifest is not in canonical form (differs from its re-encoding at byte %d)", firstDiff(canon, data))
	}
	return &m, nil
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// Validate checks every field and the relations between them.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("manifest field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if m.FormatVersion != FormatVersion {
		bad("format_version", "%d, this build reads only %d", m.FormatVersion, FormatVersion)
		return errors.Join(errs...) // the rest may mean something else
	}
	if m.Name != ExtensionName {
		bad("name", "%q, want %q", m.Name, ExtensionName)
	}
	if err := CheckVersion(m.Version); err != nil {
		bad("version", "%v", err)
	}
	if m.Serial == 0 {
		bad("serial", "0; serials start at 1")
	}
	if m.SourceDateEpoch <= 0 {
		bad("source_date_epoch", "%d, want a positive UNIX time", m.SourceDateEpoch)
	} else if want := buildTime(m.SourceDateEpoch); m.BuildTime != want {
		bad("build_time", "%q, want %q (from source_date_epoch)", m.BuildTime, want)
	}
	if !archRE.MatchString(m.Architecture) {
		bad("architecture", "%q is not a systemd architecture name", m.Architecture)
	}
	m.validateArtifacts(bad)
	m.validateVerity(bad)
	if !uuidRE.MatchString(m.ErofsUUID) {
		bad("erofs_uuid", "%q is not a lower-case UUID", m.ErofsUUID)
	}
	if !sha256RE.MatchString(m.AgentSHA256) {
		bad("agent_sha256", "%q is not 64 lower-case hex digits", m.AgentSHA256)
	}
	if !sha256RE.MatchString(m.PolicySHA256) {
		bad("policy_sha256", "%q is not 64 lower-case hex digits", m.PolicySHA256)
	}
	if !digestRE.MatchString(m.PolicyDigest) {
		bad("policy_digest", "%q is not 1 to 256 printable ASCII characters", m.PolicyDigest)
	}
	m.validateFiles(bad)
	if m.Tools.MkfsErofs == "" || m.Tools.Veritysetup == "" {
		bad("tools", "the versions of mkfs.erofs and veritysetup are required")
	}
	return errors.Join(errs...)
}

func (m *Manifest) validateArtifacts(bad func(string, string, ...any)) {
	for i, a := range m.Artifacts {
		f := fmt.Sprintf("artifacts[%d]", i)
		if err := checkPlainName(a.Name); err != nil {
			bad(f+".name", "%v", err)
			continue
		}
		if a.Size <= 0 {
			bad(f+".size", "%d, want a positive size", a.Size)
		}
		if !sha256RE.MatchString(a.SHA256) {
			bad(f+".sha256", "%q is not 64 lower-case hex digits", a.SHA256)
		}
	}
	want := []string{ErofsName(m.Version), VerityName(m.Version)}
	var got []string
	for _, a := range m.Artifacts {
		got = append(got, a.Name)
	}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		bad("artifacts", "names %q, want exactly %q in this order", got, want)
	}
}

func (m *Manifest) validateVerity(bad func(string, string, ...any)) {
	v := m.Verity
	if !sha256RE.MatchString(v.RootHash) {
		bad("verity.root_hash", "%q is not 64 lower-case hex digits", v.RootHash)
	}
	if v.HashAlgorithm != VerityHashAlgorithm {
		bad("verity.hash_algorithm", "%q, want %q", v.HashAlgorithm, VerityHashAlgorithm)
	}
	if v.DataBlockSize != VerityBlockSize {
		bad("verity.data_block_size", "%d, want %d", v.DataBlockSize, VerityBlockSize)
	}
	if v.HashBlockSize != VerityBlockSize {
		bad("verity.hash_block_size", "%d, want %d", v.HashBlockSize, VerityBlockSize)
	}
	if v.DataBlocks == 0 {
		bad("verity.data_blocks", "0")
	} else if e := m.Erofs(); e.Size > 0 && uint64(e.Size) != v.DataBlocks*uint64(VerityBlockSize) {
		bad("verity.data_blocks", "%d blocks of %d bytes do not cover the %d bytes of %s", v.DataBlocks, VerityBlockSize, e.Size, e.Name)
	}
	if !sha256RE.MatchString(v.Salt) {
		bad("verity.salt", "%q is not 64 lower-case hex digits", v.Salt)
	}
	if !uuidRE.MatchString(v.UUID) {
		bad("verity.uuid", "%q is not a lower-case UUID", v.UUID)
	}
}

func (m *Manifest) validateFiles(bad func(string, string, ...any)) {
	seen := map[string]bool{}
	for i, f := range m.Files {
		field := fmt.Sprintf("files[%d]", i)
		if i > 0 && m.Files[i-1].Path >= f.Path {
			bad("files", "not sorted by path, or %q appears twice", f.Path)
		}
		seen[f.Path] = true
		want, ok := fileMode(f.Path)
		if !ok {
			bad(field+".path", "%q is not a file a layer may hold", f.Path)
			continue
		}
		if f.Mode != want {
			bad(field+".mode", "%q for %s, want %q", f.Mode, f.Path, want)
		}
		if f.Size < 0 {
			bad(field+".size", "%d", f.Size)
		}
		if !sha256RE.MatchString(f.SHA256) {
			bad(field+".sha256", "%q is not 64 lower-case hex digits", f.SHA256)
		}
	}
	for _, p := range []string{AgentFile, PolicyFile, PolicySignatureFile, ExtensionReleaseFile, UnitsDir + "/aegisbpf.service"} {
		if !seen[p] {
			bad("files", "%s is missing", p)
		}
	}
	if f, ok := m.File(AgentFile); ok && f.SHA256 != m.AgentSHA256 {
		bad("agent_sha256", "%s, but files lists %s for %s", m.AgentSHA256, f.SHA256, AgentFile)
	}
	if f, ok := m.File(PolicyFile); ok && f.SHA256 != m.PolicySHA256 {
		bad("policy_sha256", "%s, but files lists %s for %s", m.PolicySHA256, f.SHA256, PolicyFile)
	}
}

// fileMode returns the mode a path inside the layer must have, and whether
// the path may be in a layer at all.
func fileMode(p string) (string, bool) {
	switch p {
	case AgentFile:
		return "0755", true
	case PolicyFile, PolicySignatureFile, ExtensionReleaseFile:
		return "0644", true
	}
	if path.Dir(p) == UnitsDir && unitRE.MatchString(path.Base(p)) {
		return "0644", true
	}
	return "", false
}

func buildTime(epoch int64) string {
	return time.Unix(epoch, 0).UTC().Format(time.RFC3339)
}

// sortFiles orders files by path, as the canonical encoding wants.
func sortFiles(fs []File) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
}
