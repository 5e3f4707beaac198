package update

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestOCIRoundTrip publishes a release and its channel to an in-memory
// registry (go-containerregistry's, for the unit tests; make test-fleet
// uses the CNCF distribution registry) and installs it from there.
func TestOCIRoundTrip(t *testing.T) {
	f := newFixture(t)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	f.ch.Serial++
	if err := Publish(t.Context(), f.ch, f.key, Outputs{OCI: host + "/aegisbpf/test"}, map[string]string{"1.1.0": f.layers["1.1.0"]}); err != nil {
		t.Fatal(err)
	}
	if o := f.ch.Releases[0].OCI; o == nil || o.Repository != "aegisbpf/test" || !strings.HasPrefix(o.Digest, "sha256:") {
		t.Fatalf("release OCI reference: %+v", o)
	}
	src, err := NewSource("oci://"+host+"/aegisbpf/test:stable", reg.Client())
	if err != nil {
		t.Fatal(err)
	}
	u, h := f.updater(t, machineIn(t, "1.1.0", 0.05, true))
	u.Source = src
	if _, err := u.Apply(t.Context()); err != nil || len(h.activated) != 1 {
		t.Fatalf("apply from the registry: %v, activated %v", err, h.activated)
	}
	// Checking again reuses the channel's blobs while the tag stays; a new
	// edition at the tag is fetched.
	if p, err := u.Check(t.Context()); err != nil || p.Channel.Serial != f.ch.Serial {
		t.Fatalf("second check: %v", err)
	}
	f.ch.Serial++
	if err := Publish(t.Context(), f.ch, f.key, Outputs{OCI: host + "/aegisbpf/test"}, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := u.Check(t.Context()); err != nil || p.Channel.Serial != f.ch.Serial {
		t.Fatalf("check of a new edition: %v %+v", err, p)
	}
	for _, bad := range []string{"oci://" + host + "/aegisbpf/test@sha256:" + strings.Repeat("0", 64), "oci://Bad Name:x", "ftp://x/y"} {
		if _, err := NewSource(bad, nil); err == nil {
			t.Errorf("NewSource(%q) accepted it", bad)
		}
	}
}
