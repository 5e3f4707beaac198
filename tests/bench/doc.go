// Package bench times the kernel side of AegisBPF's file decision on the
// host. The decision functions of bpf/lib are compiled into socket filter
// programs (bpf/bench.bpf.c), which a kernel that refuses BPF LSM programs
// still loads, and run many times in one BPF_PROG_TEST_RUN call, so the time
// per run is the in-kernel cost of one decision, JIT-compiled, on real maps
// filled with synthetic rules of the shape the engine writes.
//
// Two programs are timed against an empty one:
//
//   - bench_decide: the decision on the object itself (inode, then name when
//     the parent is watched, then whether the walk would climb), with the name
//     hash precomputed; this is what the 40 ns budget of DESIGN.md §7 is
//     about.
//   - bench_walk: decide_dentry from lib/file.h as the file_open hook runs it,
//     on a real file reached through a descriptor of the running task: dentry
//     reads, the name hash over kernel memory, bpf_loop, and the walk to the
//     root on super blocks with subtree rules.
//
// Neither includes the ring buffer event of a deny, the LSM trampoline, or
// cgroup-scoped rules. Run `go test -run '^$' -bench . ./tests/bench` for
// benchstat output, or `go run ./tests/bench/cmd/decisionbench` for the
// markdown table of docs/PERFORMANCE.md. Both need root.
package bench
