// Package bpf holds the BPF C programs of AegisBPF and the Go bindings that
// bpf2go generates from them. The generated .go and .o files are committed so
// that `go build` needs no clang; `make generate` rebuilds them with clang-19
// and `make check-generate` fails when they are stale.
//
// Every struct Go shares with BPF C is declared once in abi.h and reaches Go
// through bpf2go -type.
package bpf
