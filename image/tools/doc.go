// Package tools runs the external programs the image layer needs:
// mkfs.erofs (erofs-utils) and veritysetup (cryptsetup). It is the only
// place in the project that runs them. It owns their command lines, checks
// each program's version before first use, and reports a failure as a
// *CommandError that carries the command line and the program's standard
// error.
//
// Find a program with FindErofs or FindVerity; the returned value is
// immutable and safe for concurrent use.
package tools
