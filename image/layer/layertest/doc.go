// Package layertest makes layer inputs for tests and for the VM harness: a
// fake static ELF agent, a policy and a stand-in signature, unit files, a
// signing key derived from a seed, and a fake policy validator. It is not
// for production: anyone who knows the seed knows the private key.
package layertest
