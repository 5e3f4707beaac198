// Package hostcmd owns every command line the appliance builder runs on the
// build host: mmdebstrap for the base root, tar to unpack it, mkfs.erofs for
// the read-only root and mkfs.ext4 for the /var disk. Each function builds
// one command line, runs it, and turns a failure into an error that names
// the step and carries the tail of the tool's output.
//
// Nothing here decides what to build; image/appliance does.
package hostcmd
