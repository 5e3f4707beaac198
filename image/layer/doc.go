// Package layer builds and verifies the AegisBPF image layer: an erofs
// image holding the agent, its signed policy, its units and the systemd-sysext
// extension-release file; the image's dm-verity hash tree; a canonical JSON
// manifest naming both with their sizes and SHA-256 digests and the verity
// root hash; and an Ed25519 signature of the manifest's exact bytes in a
// sidecar file. See docs/IMAGE.md for the format.
//
// Build makes a layer from its inputs; the same inputs give byte-identical
// outputs. Verify and VerifyHashes check a layer on disk, in the order given
// in docs/IMAGE.md, and return an error that names what failed and matches
// ErrUntrusted, ErrMalformed or ErrCorrupt with errors.Is. Neither keeps
// state between calls; both are safe for concurrent use.
//
// The external programs (mkfs.erofs, veritysetup) are run by package
// image/tools only.
package layer
