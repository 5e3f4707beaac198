/* Minimal kernel types for CO-RE. Only the fields AegisBPF reads are declared;
 * preserve_access_index makes libbpf/cilium-ebpf relocate each access against
 * the running kernel's BTF, so layout differences between kernels do not
 * matter. Never add a field here without a CO-RE read of it. */
#ifndef AEGIS_KERNEL_H
#define AEGIS_KERNEL_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u32 u32;
typedef __u64 u64;
typedef __u32 dev_t;

struct super_block {
	dev_t s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

#endif
