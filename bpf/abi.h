/* abi.h: every struct that both BPF C and Go see. Go gets these types from
 * bpf2go -type, never from a hand-written mirror. Rules: fixed-width types,
 * natural alignment, explicit padding, no packed. */
#ifndef AEGIS_ABI_H
#define AEGIS_ABI_H

#include <linux/types.h>

/* Key of the inode deny map: the kernel's dev_t of the super block (MAJOR<<20
 * | MINOR, not the userspace encoding) and the inode number. */
struct inode_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

/* Value of the inode deny map. */
struct inode_rule {
	__u32 rule;  /* dense rule index from the compiled policy */
	__u32 flags; /* reserved, zero */
};

#endif
