package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the OCI artifacts channel publish pushes.
const (
	MediaTypeManifest     = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeEmpty        = "application/vnd.oci.empty.v1+json"
	ArtifactTypeLayer     = "application/vnd.aegisbpf.layer.v1"
	ArtifactTypeChannel   = "application/vnd.aegisbpf.channel.v1"
	MediaTypeErofs        = "application/vnd.aegisbpf.layer.erofs"
	MediaTypeVerity       = "application/vnd.aegisbpf.layer.verity"
	MediaTypeLayerMan     = "application/vnd.aegisbpf.layer.manifest.v1+json"
	MediaTypeLayerSig     = "application/vnd.aegisbpf.layer.manifest.sig.v1+json"
	MediaTypeChannel      = "application/vnd.aegisbpf.channel.v1+json"
	MediaTypeChannelSig   = "application/vnd.aegisbpf.channel.sig.v1+json"
	annotationTitle       = "org.opencontainers.image.title"
	maxOCIManifestSize    = 64 << 10
	emptyConfig           = "{}"
	ociManifestAcceptType = MediaTypeManifest
)

// ociManifest is an OCI image manifest used as an artifact: an empty
// config, the files as layers, each titled with its file name.
type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	ArtifactType  string          `json:"artifactType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (m *ociManifest) file(name string) (ociDescriptor, bool) {
	for _, l := range m.Layers {
		if l.Annotations[annotationTitle] == name {
			return l, true
		}
	}
	return ociDescriptor{}, false
}

// ociSource reads the channel artifact at a tag and the releases'
// artifacts by digest from one registry.
type ociSource struct {
	tag    name.Tag
	client *http.Client

	mu         sync.Mutex
	transports map[string]http.RoundTripper // by repository
	checked    map[string]*ociManifest      // release artifacts, by digest
	blobs      map[string][]byte            // the channel's last blobs, by digest (immutable)
}

func newOCISource(ref string, client *http.Client) (*ociSource, error) {
	if strings.Contains(ref, "@") {
		return nil, fmt.Errorf("channel location oci://%s: a channel is a tag (repo:tag), not a digest", ref)
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("channel location oci://%s: %w (want oci://host[:port]/repository:tag)", ref, err)
	}
	return &ociSource{tag: tag, client: client, transports: map[string]http.RoundTripper{}, checked: map[string]*ociManifest{}, blobs: map[string][]byte{}}, nil
}

func (s *ociSource) String() string { return "oci://" + s.tag.String() }

// repoClient returns a client whose requests to repo carry the
// registry's pull token (authn.DefaultKeychain: docker's config.json).
func (s *ociSource) repoClient(ctx context.Context, repo name.Repository) (*http.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.transports[repo.String()]; ok {
		return &http.Client{Transport: t, Timeout: s.client.Timeout}, nil
	}
	auth, err := authn.DefaultKeychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo, err)
	}
	base := s.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", repo.Registry, err)
	}
	s.transports[repo.String()] = t
	return &http.Client{Transport: t, Timeout: s.client.Timeout}, nil
}

func blobURL(repo name.Repository, digest string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), digest)
}

// manifest fetches and parses the artifact manifest at ref (a tag or a
// digest); a digest is checked against the bytes.
func (s *ociSource) manifest(ctx context.Context, repo name.Repository, ref string) (*ociManifest, error) {
	c, err := s.repoClient(ctx, repo)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), ref)
	data, err := getSmall(ctx, c, u, http.Header{"Accept": {ociManifestAcceptType}}, maxOCIManifestSize)
	if err != nil {
		return nil, err
	}
	if d, ok := strings.CutPrefix(ref, "sha256:"); ok {
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != d {
			return nil, fmt.Errorf("%w: artifact manifest %s@%s has sha256 %x", ErrDigest, repo, ref, sum)
		}
	}
	var m ociManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("artifact manifest %s:%s: %w", repo, ref, err)
	}
	if m.SchemaVersion != 2 || m.MediaType != MediaTypeManifest {
		return nil, fmt.Errorf("artifact manifest %s:%s: schemaVersion %d, mediaType %q, want 2 and %q", repo, ref, m.SchemaVersion, m.MediaType, MediaTypeManifest)
	}
	return &m, nil
}

func (s *ociSource) Channel(ctx context.Context) ([]byte, []byte, error) {
	repo := s.tag.Repository
	m, err := s.manifest(ctx, repo, s.tag.TagStr())
	if err != nil {
		return nil, nil, err
	}
	if m.ArtifactType != ArtifactTypeChannel {
		return nil, nil, fmt.Errorf("%s is a %q artifact, not a channel (%s)", s, m.ArtifactType, ArtifactTypeChannel)
	}
	c, err := s.repoClient(ctx, repo)
	if err != nil {
		return nil, nil, err
	}
	fresh := map[string][]byte{}
	defer func() {
		s.mu.Lock()
		s.blobs = fresh // keep only the current edition's
		s.mu.Unlock()
	}()
	get := func(file string, limit int64) ([]byte, error) {
		d, ok := m.file(file)
		if !ok {
			return nil, fmt.Errorf("%s has no %s", s, file)
		}
		// A blob is immutable: a process that checks again (the fleet
		// simulation's hosts) fetches only the manifest while the tag
		// does not move.
		s.mu.Lock()
		data, ok := s.blobs[d.Digest]
		s.mu.Unlock()
		if ok {
			fresh[d.Digest] = data
			return data, nil
		}
		data, err := getSmall(ctx, c, blobURL(repo, d.Digest), nil, limit)
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != d.Digest {
			return nil, fmt.Errorf("%w: %s of %s is not blob %s", ErrDigest, file, s, d.Digest)
		}
		fresh[d.Digest] = data
		return data, nil
	}
	data, err := get(ChannelFile, maxChannelSize)
	if err != nil {
		return nil, nil, err
	}
	sig, err := get(ChannelSignatureFile, maxSignatureSize)
	if err != nil {
		return nil, nil, err
	}
	return data, sig, nil
}

func (s *ociSource) Open(ctx context.Context, r *Release, f File, offset int64) (io.ReadCloser, int64, error) {
	if r.OCI == nil {
		return nil, 0, fmt.Errorf("%w: %s", errNoOCI, r.Version)
	}
	repo, err := name.NewRepository(s.tag.RegistryStr()+"/"+r.OCI.Repository, name.StrictValidation)
	if err != nil {
		return nil, 0, err
	}
	// The artifact the channel names must list the file with the digest
	// the channel pins: the registry serves what the signer published.
	s.mu.Lock()
	m := s.checked[r.OCI.Digest]
	s.mu.Unlock()
	if m == nil {
		if m, err = s.manifest(ctx, repo, r.OCI.Digest); err != nil {
			return nil, 0, err
		}
		s.mu.Lock()
		s.checked[r.OCI.Digest] = m
		s.mu.Unlock()
	}
	d, ok := m.file(f.Name)
	if !ok || d.Digest != "sha256:"+f.SHA256 || d.Size != f.Size {
		return nil, 0, fmt.Errorf("%w: artifact %s@%s does not list %s with sha256 %s and %d bytes", ErrDigest, repo, r.OCI.Digest, f.Name, f.SHA256, f.Size)
	}
	c, err := s.repoClient(ctx, repo)
	if err != nil {
		return nil, 0, err
	}
	return getRange(ctx, c, blobURL(repo, d.Digest), nil, offset)
}

// ErrDigest marks content whose digest is not the one the channel pins.
var ErrDigest = errors.New("digest mismatch")

// rawManifest is a manifest remote.Put sends as it is.
type rawManifest struct {
	data      []byte
	mediaType string
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.data, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mediaType), nil }

// blob is one file pushed as a layer of an artifact.
type blob struct {
	name, mediaType string
	data            []byte
}

// pushArtifact uploads the blobs and an empty config to repo, then the
// artifact manifest at ref (a tag, or "" for by digest only), and returns
// the manifest's digest. Uploads of blobs the registry has are skipped.
func pushArtifact(ctx context.Context, repo name.Repository, artifactType string, blobs []blob, tag string, opts ...remote.Option) (string, error) {
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	m := ociManifest{SchemaVersion: 2, MediaType: MediaTypeManifest, ArtifactType: artifactType}
	upload := func(data []byte, mediaType string) (ociDescriptor, error) {
		l := static.NewLayer(data, types.MediaType(mediaType))
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return ociDescriptor{}, fmt.Errorf("pushing a blob to %s: %w", repo, err)
		}
		sum := sha256.Sum256(data)
		return ociDescriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}, nil
	}
	var err error
	if m.Config, err = upload([]byte(emptyConfig), MediaTypeEmpty); err != nil {
		return "", err
	}
	for _, b := range blobs {
		d, err := upload(b.data, b.mediaType)
		if err != nil {
			return "", fmt.Errorf("%s: %w", b.name, err)
		}
		d.Annotations = map[string]string{annotationTitle: b.name}
		m.Layers = append(m.Layers, d)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&m); err != nil {
		return "", err
	}
	raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	ref := name.Reference(repo.Digest(digest))
	if tag != "" {
		ref = repo.Tag(tag)
	}
	if err := remote.Put(ref, rawManifest{raw, MediaTypeManifest}, opts...); err != nil {
		return "", fmt.Errorf("pushing the artifact manifest to %s: %w", ref, err)
	}
	return digest, nil
}
