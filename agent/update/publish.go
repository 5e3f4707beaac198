package update

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aegisbpf/aegisbpf/agent/atomicfile"
	"github.com/aegisbpf/aegisbpf/image/layer"
	"github.com/aegisbpf/aegisbpf/policy/keys"
	"github.com/google/go-containerregistry/pkg/name"
)

// Outputs are where a channel edition goes: a static tree (Dir) and an
// OCI repository (OCI, "host[:port]/repository": the releases by digest,
// the channel at the tag of its name). At least one is needed.
type Outputs struct {
	Dir string
	OCI string
}

// releasesDir is where a static tree keeps the releases' files.
const releasesDir = "releases"

// NewRelease describes the verified layer in dir as a release with the
// given waves (fractions), the first opening at start; the others stay
// closed until channel advance opens them. The files are not copied or
// pushed yet (Publish does).
func NewRelease(dir string, ring keys.Ring, fractions []float64, start time.Time) (*Release, string, error) {
	mpath, err := layer.FindManifest(dir)
	if err != nil {
		return nil, "", err
	}
	l, err := layer.VerifyHashes(mpath, ring)
	if err != nil {
		return nil, "", err
	}
	v := l.Manifest.Version
	r := &Release{Version: v, Serial: l.Manifest.Serial}
	names := []string{layer.ErofsName(v), layer.SignatureName(v), layer.ManifestName(v), layer.VerityName(v)}
	slices.Sort(names)
	for _, n := range names {
		p := filepath.Join(filepath.Dir(mpath), n)
		size, sum, err := layer.HashFile(p)
		if err != nil {
			return nil, "", err
		}
		r.Files = append(r.Files, File{Name: n, Size: size, SHA256: sum})
	}
	for i, f := range fractions {
		w := Wave{Fraction: f}
		if i == 0 {
			t := start.UTC().Truncate(time.Second)
			w.From = &t
		}
		r.Waves = append(r.Waves, w)
	}
	return r, filepath.Dir(mpath), nil
}

// Publish uploads the files of the new releases (version → layer
// directory) to the outputs, then signs c and writes it there. Files go
// first, so a host never sees a channel naming a release it cannot fetch.
func Publish(ctx context.Context, c *Channel, key ed25519.PrivateKey, out Outputs, layers map[string]string) error {
	if out.Dir == "" && out.OCI == "" {
		return fmt.Errorf("publishing channel %s: no output (a static directory, an OCI repository or both)", c.Name)
	}
	var repo name.Repository
	if out.OCI != "" {
		var err error
		if repo, err = name.NewRepository(out.OCI, name.StrictValidation); err != nil {
			return fmt.Errorf("OCI repository %q: %w", out.OCI, err)
		}
	}
	for i := range c.Releases {
		r := &c.Releases[i]
		dir, ok := layers[r.Version]
		if !ok {
			continue
		}
		if out.Dir != "" {
			r.Path = path.Join(releasesDir, r.Version)
			if err := copyRelease(r, dir, filepath.Join(out.Dir, releasesDir, r.Version)); err != nil {
				return err
			}
		}
		if out.OCI != "" {
			var blobs []blob
			for _, f := range r.Files {
				data, err := os.ReadFile(filepath.Join(dir, f.Name))
				if err != nil {
					return err
				}
				blobs = append(blobs, blob{name: f.Name, mediaType: mediaTypeOf(f.Name), data: data})
			}
			digest, err := pushArtifact(ctx, repo, ArtifactTypeLayer, blobs, "")
			if err != nil {
				return fmt.Errorf("release %s: %w", r.Version, err)
			}
			r.OCI = &OCIRef{Repository: repo.RepositoryStr(), Digest: digest}
		}
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	sig, err := layer.Sign(key, data)
	if err != nil {
		return err
	}
	if out.OCI != "" {
		if err := PushChannel(ctx, repo, c.Name, data, sig); err != nil {
			return err
		}
	}
	if out.Dir != "" {
		// The signature first: a host reading between the two writes sees
		// a signature that does not match and tries again at its next run.
		if err := atomicfile.Write(filepath.Join(out.Dir, ChannelSignatureFile), sig, 0o644); err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(out.Dir, ChannelFile), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func mediaTypeOf(file string) string {
	switch {
	case strings.HasSuffix(file, ".erofs"):
		return MediaTypeErofs
	case strings.HasSuffix(file, ".verity"):
		return MediaTypeVerity
	case strings.HasSuffix(file, ".manifest.json"):
		return MediaTypeLayerMan
	}
	return MediaTypeLayerSig
}

// copyRelease copies r's files from src into dst, checking each against
// the release.
func copyRelease(r *Release, src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range r.Files {
		if err := copyChecked(filepath.Join(src, f.Name), filepath.Join(dst, f.Name), f); err != nil {
			return fmt.Errorf("release %s: %w", r.Version, err)
		}
	}
	return atomicfile.SyncDir(dst)
}

func copyChecked(src, dst string, f File) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("%s changed while publishing (%d bytes, sha256 %s)", src, n, sum)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// PushChannel pushes a signed channel edition (its file and signature,
// as they are) to repo at tag.
func PushChannel(ctx context.Context, repo name.Repository, tag string, data, sig []byte) error {
	blobs := []blob{{ChannelFile, MediaTypeChannel, data}, {ChannelSignatureFile, MediaTypeChannelSig, sig}}
	if _, err := pushArtifact(ctx, repo, ArtifactTypeChannel, blobs, tag); err != nil {
		return fmt.Errorf("channel %s: %w", tag, err)
	}
	return nil
}
