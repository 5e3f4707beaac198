/* kernfs.h: reading the cgroup tree's kernfs nodes across kernel versions. */
#ifndef AEGIS_KERNFS_H
#define AEGIS_KERNFS_H

#include "../include/kernel.h"
#include <bpf/bpf_core_read.h>

/* Linux 6.15 renamed kernfs_node.parent to __parent (read under RCU). */
struct kernfs_node___6_15 {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

/* The two reads are functions of their own so that clang cannot merge
 * them into one load at a chosen offset: the read of the field a kernel
 * lacks is poisoned at load and must stay in the branch the verifier
 * sees is dead. */
static __noinline __u64 kn_parent_field(struct kernfs_node *kn)
{
	return (__u64)BPF_CORE_READ(kn, parent);
}

static __noinline __u64 kn_parent_field_6_15(struct kernfs_node *kn)
{
	return (__u64)BPF_CORE_READ((struct kernfs_node___6_15 *)kn, __parent);
}

/* kn_parent returns the parent of kn, NULL for the root. */
static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->parent))
		return (struct kernfs_node *)kn_parent_field(kn);
	return (struct kernfs_node *)kn_parent_field_6_15(kn);
}

#endif
