// Package appliance builds the AegisBPF test and demo appliance: a Debian
// root made by mmdebstrap from a recipe (rootfs/appliance), packed as a
// read-only erofs image, with a second, writable ext4 disk for /var, and
// the kernel, initramfs and command line to boot it with qemu -kernel.
//
// The expensive part, the mmdebstrap run, is cached outside the repository
// under CacheDir/appliance/KEY, where KEY is the SHA-256 of the recipe
// files that shape the base root and of the builder's own fixed options.
// The cached tarball is verified against its recorded digest on every use
// and rebuilt when missing or corrupt; a lock serialises concurrent
// builders. Everything after it (extra files, erofs, ext4) is redone on
// every Build and takes seconds.
//
// Callers add content through two generic lists of Files: RootFiles land
// in the read-only root (trust anchor keys, base units, binaries), VarFiles
// on the /var disk (slot contents, state). The package decides nothing
// about what they are.
//
// Building needs root: mmdebstrap runs in root mode and the image keeps
// the root's owners. The command lines live in internal/hostcmd.
package appliance
