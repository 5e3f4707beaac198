package update

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/policy/keys"
)

// ChannelFormat is the channel format this package writes and reads.
const ChannelFormat = 1

// File names of a channel in a static tree and in its OCI artifact.
const (
	ChannelFile          = "channel.json"
	ChannelSignatureFile = "channel.json.sig"
)

// maxChannelSize bounds what ParseChannel reads.
const maxChannelSize = 1 << 20

// Channel is the signed document hosts update from. Its JSON encoding is
// canonical (fields in this order, releases sorted by serial, two-space
// indentation, a final newline): Marshal writes it and ParseChannel
// accepts nothing else, so the signature covers one exact byte string.
type Channel struct {
	FormatVersion int    `json:"format_version"`
	Name          string `json:"name"`
	// Serial grows with every signed edition; hosts refuse a lower one
	// than they have seen (replay) and another edition under the same.
	Serial uint64    `json:"serial"`
	Issued time.Time `json:"issued"`
	// Expires bounds how long an edition is believed: a freeze attack
	// (serving an old edition forever) ends there.
	Expires  time.Time `json:"expires"`
	Releases []Release `json:"releases"`
}

// Release is one layer version and how far it has rolled out.
type Release struct {
	Version string `json:"version"`
	// Serial is the layer manifest's serial.
	Serial uint64 `json:"serial"`
	// Files are the layer's four files (erofs, hash tree, manifest and its
	// signature), sorted by name; each is downloaded and checked against
	// its size and sha256 before the slots see it.
	Files []File `json:"files"`
	// OCI names the release's OCI artifact in the channel's registry.
	OCI *OCIRef `json:"oci,omitempty"`
	// Path is the release's directory in a static tree, relative to the
	// channel file.
	Path string `json:"path,omitempty"`
	// Waves, in order: each opens the release to a larger fraction of the
	// fleet from its time on. A wave without a time is not open yet.
	Waves []Wave `json:"waves"`
	// Halted stops the release: no host installs it any more.
	Halted *Halt `json:"halted,omitempty"`
}

// File is one file of a release.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// OCIRef is an OCI artifact: a repository of the channel's registry and
// the digest of the artifact's manifest. Its layers are the release's
// files, each a blob whose digest is the file's sha256.
type OCIRef struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
}

// Wave opens a release to Fraction of the fleet from From.
type Wave struct {
	Fraction float64    `json:"fraction"`
	From     *time.Time `json:"from,omitempty"`
}

// Halt records why and when a release was stopped.
type Halt struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

var (
	channelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	sha256RE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	repoRE        = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
	ociDigestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// OpenFraction is the share of the fleet the release is open to at now:
// the fraction of the last wave whose time has come, 0 before the first.
func (r *Release) OpenFraction(now time.Time) float64 {
	f := 0.0
	for _, w := range r.Waves {
		if w.From == nil || w.From.After(now) {
			break
		}
		f = w.Fraction
	}
	return f
}

// OpenWaves is how many waves have a time (opened or scheduled).
func (r *Release) OpenWaves() int {
	n := 0
	for _, w := range r.Waves {
		if w.From != nil {
			n++
		}
	}
	return n
}

// Release returns the release of version v.
func (c *Channel) Release(v string) *Release {
	for i := range c.Releases {
		if c.Releases[i].Version == v {
			return &c.Releases[i]
		}
	}
	return nil
}

// Marshal validates c and returns its canonical encoding.
func (c *Channel) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.encode()
}

func (c *Channel) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding channel: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseChannel decodes a channel strictly: unknown fields, trailing data,
// an invalid field or any byte that differs from the canonical encoding
// is an error.
func ParseChannel(data []byte) (*Channel, error) {
	if len(data) > maxChannelSize {
		return nil, fmt.Errorf("channel is %d bytes, more than the %d allowed", len(data), maxChannelSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Channel
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decoding channel: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding channel: data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	canon, err := c.encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, errors.New("channel is not in canonical form (re-encoding it gives other bytes)")
	}
	return &c, nil
}

// Validate checks every field and the relations between them.
func (c *Channel) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("channel field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.FormatVersion != ChannelFormat {
		bad("format_version", "%d, this build reads only %d", c.FormatVersion, ChannelFormat)
		return errors.Join(errs...)
	}
	if !channelNameRE.MatchString(c.Name) {
		bad("name", "%q: want 1 to 64 characters of a-z, 0-9, '.', '_', '-'", c.Name)
	}
	if c.Serial == 0 {
		bad("serial", "0; serials start at 1")
	}
	if c.Issued.IsZero() || c.Issued.Location() != time.UTC {
		bad("issued", "want a UTC time")
	}
	if !c.Expires.After(c.Issued) || c.Expires.Location() != time.UTC {
		bad("expires", "want a UTC time after issued")
	}
	versions := map[string]bool{}
	for i := range c.Releases {
		r := &c.Releases[i]
		f := fmt.Sprintf("releases[%d]", i)
		if versions[r.Version] {
			bad(f+".version", "%q appears twice", r.Version)
		}
		versions[r.Version] = true
		if i > 0 && r.Serial <= c.Releases[i-1].Serial {
			bad(f+".serial", "%d: releases must be sorted by growing serial", r.Serial)
		}
		r.validate(f, bad)
	}
	return errors.Join(errs...)
}

func (r *Release) validate(f string, bad func(string, string, ...any)) {
	if err := layer.CheckVersion(r.Version); err != nil {
		bad(f+".version", "%v", err)
	}
	if r.Serial == 0 {
		bad(f+".serial", "0; serials start at 1")
	}
	want := []string{layer.ErofsName(r.Version), layer.SignatureName(r.Version), layer.ManifestName(r.Version), layer.VerityName(r.Version)}
	slices.Sort(want)
	var got []string
	for j, file := range r.Files {
		got = append(got, file.Name)
		if file.Size <= 0 {
			bad(fmt.Sprintf("%s.files[%d].size", f, j), "%d, want a positive size", file.Size)
		}
		if !sha256RE.MatchString(file.SHA256) {
			bad(fmt.Sprintf("%s.files[%d].sha256", f, j), "%q is not 64 lower-case hex digits", file.SHA256)
		}
	}
	if !slices.Equal(got, want) {
		bad(f+".files", "names %v, want %v in this order", got, want)
	}
	if r.OCI == nil && r.Path == "" {
		bad(f, "neither oci nor path says where the files are")
	}
	if o := r.OCI; o != nil {
		if !repoRE.MatchString(o.Repository) || len(o.Repository) > 255 {
			bad(f+".oci.repository", "%q is not an OCI repository name", o.Repository)
		}
		if !ociDigestRE.MatchString(o.Digest) {
			bad(f+".oci.digest", "%q is not sha256:<64 hex digits>", o.Digest)
		}
	}
	if r.Path != "" {
		if p := path.Clean(r.Path); p != r.Path || path.IsAbs(p) || p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.ContainsAny(p, "?#%\\") {
			bad(f+".path", "%q: want a clean relative path below the channel's directory", r.Path)
		}
	}
	if len(r.Waves) == 0 {
		bad(f+".waves", "none; a release needs at least one wave")
	}
	closed := false
	for j, w := range r.Waves {
		wf := fmt.Sprintf("%s.waves[%d]", f, j)
		if math.IsNaN(w.Fraction) || w.Fraction <= 0 || w.Fraction > 1 {
			bad(wf+".fraction", "%v, want a fraction in (0, 1]", w.Fraction)
		}
		if j > 0 && w.Fraction <= r.Waves[j-1].Fraction {
			bad(wf+".fraction", "%v: fractions must grow from wave to wave", w.Fraction)
		}
		switch {
		case w.From == nil:
			closed = true
		case closed:
			bad(wf+".from", "set after a wave without a time: waves open in order")
		case w.From.Location() != time.UTC:
			bad(wf+".from", "want a UTC time")
		case j > 0 && w.From.Before(*r.Waves[j-1].From):
			bad(wf+".from", "before the previous wave's")
		}
	}
	if len(r.Waves) > 0 && r.Waves[len(r.Waves)-1].Fraction != 1 {
		bad(f+".waves", "the last wave must reach the whole fleet (fraction 1)")
	}
	if h := r.Halted; h != nil && (h.Time.IsZero() || h.Reason == "") {
		bad(f+".halted", "want a time and a reason")
	}
}

// Refusal kinds of a channel; hosts name them in their last check result.
var (
	ErrSignature = errors.New("bad channel signature")
	ErrExpired   = errors.New("channel expired")
	ErrReplayed  = errors.New("channel replayed")
	ErrInvalid   = errors.New("invalid channel")
)

// Seen is what a host remembers of the last channel it accepted.
type Seen struct {
	Name    string    `json:"name"`
	Serial  uint64    `json:"serial"`
	SHA256  string    `json:"sha256"`
	Expires time.Time `json:"expires"`
}

// VerifyChannel checks a channel edition against the host's trusted keys,
// the clock and the last edition it accepted (nil for none), and returns
// it with what to remember of it. Every refusal wraps one of ErrSignature,
// ErrInvalid, ErrExpired or ErrReplayed.
func VerifyChannel(data, sig []byte, ring keys.Ring, now time.Time, last *Seen) (*Channel, *Seen, error) {
	if _, err := layer.VerifySignature(ring, data, sig); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	c, err := ParseChannel(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	sum := sha256.Sum256(data)
	seen := &Seen{Name: c.Name, Serial: c.Serial, SHA256: hex.EncodeToString(sum[:]), Expires: c.Expires}
	if last != nil {
		if c.Name != last.Name {
			return nil, nil, fmt.Errorf("%w: channel %q, this host follows %q", ErrInvalid, c.Name, last.Name)
		}
		if c.Serial < last.Serial {
			return nil, nil, fmt.Errorf("%w: serial %d is below serial %d, seen before (an old edition served again)", ErrReplayed, c.Serial, last.Serial)
		}
		if c.Serial == last.Serial && seen.SHA256 != last.SHA256 {
			return nil, nil, fmt.Errorf("%w: serial %d was seen before with other content (sha256 %s, now %s)", ErrReplayed, c.Serial, last.SHA256, seen.SHA256)
		}
	}
	if !now.Before(c.Expires) {
		return nil, nil, fmt.Errorf("%w: serial %d expired at %s (now %s)", ErrExpired, c.Serial, c.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return c, seen, nil
}
