package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Source is where a host fetches its channel and the releases' files.
type Source interface {
	// Channel fetches the channel file and its signature.
	Channel(ctx context.Context) (data, sig []byte, err error)
	// Open returns file f of release r from byte offset on. The offset
	// returned is where the body starts: offset when the server honoured
	// the range, 0 when it sent the whole file.
	Open(ctx context.Context, r *Release, f File, offset int64) (io.ReadCloser, int64, error)
	// String names the source for messages.
	String() string
}

// maxSignatureSize bounds a channel signature's download.
const maxSignatureSize = 4096

// NewSource returns the source a channel location names:
//
//	https://host/path/channel.json   a static tree (http:// too); a
//	                                 location ending in / gets channel.json
//	oci://host[:port]/repo:tag       an OCI registry: the channel artifact
//	                                 at repo:tag, releases in the same registry
//
// client makes the requests (its Timeout bounds each).
func NewSource(location string, client *http.Client) (Source, error) {
	scheme, rest, ok := strings.Cut(location, "://")
	if !ok {
		return nil, fmt.Errorf("channel location %q: want https://, http:// or oci:// and the rest", location)
	}
	switch scheme {
	case "http", "https":
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("channel location: %w", err)
		}
		if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("channel location %q: want scheme://host/path with no user, query or fragment", location)
		}
		if strings.HasSuffix(u.Path, "/") || u.Path == "" {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/" + ChannelFile
		}
		return &staticSource{channel: u, client: client}, nil
	case "oci":
		return newOCISource(rest, client)
	}
	return nil, fmt.Errorf("channel location %q: unknown scheme %q (https, http or oci)", location, scheme)
}

// staticSource reads a tree that channel publish wrote, served by any
// HTTP server or CDN.
type staticSource struct {
	channel *url.URL
	client  *http.Client
}

func (s *staticSource) String() string { return s.channel.String() }

func (s *staticSource) Channel(ctx context.Context) ([]byte, []byte, error) {
	data, err := getSmall(ctx, s.client, s.channel.String(), nil, maxChannelSize)
	if err != nil {
		return nil, nil, err
	}
	sig, err := getSmall(ctx, s.client, s.channel.String()+".sig", nil, maxSignatureSize)
	if err != nil {
		return nil, nil, err
	}
	return data, sig, nil
}

func (s *staticSource) Open(ctx context.Context, r *Release, f File, offset int64) (io.ReadCloser, int64, error) {
	if r.Path == "" {
		return nil, 0, fmt.Errorf("release %s has no path in a static tree", r.Version)
	}
	u := s.channel.ResolveReference(&url.URL{Path: r.Path + "/" + f.Name})
	return getRange(ctx, s.client, u.String(), nil, offset)
}

// getSmall GETs url into memory, refusing more than limit bytes.
func getSmall(ctx context.Context, client *http.Client, url string, header http.Header, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("fetching %s: more than %d bytes", url, limit)
	}
	return data, nil
}

// getRange GETs url from offset on. A server that ignores the range
// answers 200 with the whole file: the returned offset is then 0.
func getRange(ctx context.Context, client *http.Client, url string, header http.Header, offset int64) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", url, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.Body, 0, nil
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("fetching %s: asked for bytes from %d, got Content-Range %q", url, offset, resp.Header.Get("Content-Range"))
		}
		return resp.Body, offset, nil
	}
	resp.Body.Close()
	return nil, 0, fmt.Errorf("fetching %s: %s", url, resp.Status)
}

// DefaultClient is the HTTP client of the update verbs: bounded
// connection set-up, no bound on a large download's duration (the context
// bounds it).
func DefaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t}
}

var errNoOCI = errors.New("release has no OCI artifact")
