//go:build ignore

/* file.bpf.c: the lsm/file_open hook. */

#include "include/kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"

#define EPERM 1

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct inode_key);
	__type(value, struct inode_rule);
} deny_inodes SEC(".maps");

static __always_inline int inode_denied(const struct inode_key *key)
{
	return bpf_map_lookup_elem(&deny_inodes, key) != NULL;
}

SEC("lsm/file_open")
int BPF_PROG(aegis_file_open, struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct inode_key key = {
		.ino = BPF_CORE_READ(inode, i_ino),
		.dev = BPF_CORE_READ(inode, i_sb, s_dev),
	};

	if (inode_denied(&key))
		return -EPERM;
	return 0;
}
