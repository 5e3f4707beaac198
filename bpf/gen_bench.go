package bpf

// The benchmark object: the decision functions in socket filter programs,
// timed on the host by tests/bench. Same flags as gen.go.
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu" -type inode_key -type name_key -type rule_ref -type rule_info -type net_ref -type net_rule Bench bench.bpf.c
