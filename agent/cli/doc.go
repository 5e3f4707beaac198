// Package cli implements the aegisbpf command line: one static binary whose
// verbs serve both the hardened host (run, status, slot, ...) and the build
// host (keygen, policy sign, image build, ...). See docs/adr/0002.
//
// Each verb group lives in its own file and registers itself in the table in
// root.go. Verbs write to the Env's writers, never to os.Stdout directly, so
// they can be tested in-process.
package cli
