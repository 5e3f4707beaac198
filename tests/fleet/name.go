package fleet

import "github.com/google/go-containerregistry/pkg/name"

// nameRepository parses an OCI repository reference.
func nameRepository(s string) (name.Repository, error) {
	return name.NewRepository(s, name.StrictValidation)
}
