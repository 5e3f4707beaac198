/* file.h: the file decision over real kernel objects: the object itself
 * (inode and name), then, on super blocks with subtree rules, each ancestor
 * directory up to the filesystem root. Dentry ancestry is a property of the
 * filesystem, not of the mount or namespace the file was reached through, so
 * bind mounts, chroots, other mount namespaces and /proc/self/fd reopens all
 * resolve to the same walk. */
#ifndef AEGIS_FILE_H
#define AEGIS_FILE_H

#include <bpf/bpf_core_read.h>
#include "decide.h"

struct walk {
	struct match m;
	struct dentry *cur;
	__u32 dev;
	__u32 access;
	__u32 level;
	bool climb; /* walk above the object itself */
	bool done;  /* reached the root, or an enforcing match */
};

static __always_inline __u64 dentry_name_hash(struct dentry *d)
{
	__u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	return fnv1a64_kernel(name, len);
}

static long walk_step(__u64 i, void *data)
{
	struct walk *w = data;
	struct dentry *d = w->cur;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	__u64 ino = BPF_CORE_READ(d, d_inode, i_ino);
	bool below = w->level > 0;

	if (check_inode(&w->m, w->dev, ino, w->access, below))
		goto final;
	if (parent && parent != d) {
		__u64 pino = BPF_CORE_READ(parent, d_inode, i_ino);
		if (dir_watched(w->dev, pino)) {
			__u64 h = dentry_name_hash(d);
			if (check_name(&w->m, w->dev, pino, h, w->access, below))
				goto final;
		}
	}
	if (!parent || parent == d || !w->climb)
		goto final;
	w->cur = parent;
	w->level++;
	return 0;
final:
	w->done = true;
	return 1;
}

/* decide_dentry runs the walk for the dentry at address d on super block
 * dev and returns the action, with *rule set to the matching rule index
 * (AEGIS_NO_RULE if none). It is a global function so the verifier checks
 * it once per program rather than at every call site; the dentry travels
 * as a plain address because it is only ever read with CO-RE probe reads. */
__noinline int decide_dentry(__u64 d, __u32 dev, __u32 access, __u32 *rule)
{
	struct walk w = {};

	if (!rule)
		return AEGIS_ACTION_ALLOW;
	w.cur = (struct dentry *)d;
	w.dev = dev;
	w.access = access;
	w.climb = dev_has_subtrees(dev);
	bpf_loop(AEGIS_MAX_DEPTH, walk_step, &w, 0);

	if (w.m.ref) {
		*rule = w.m.ref - 1;
		return w.m.audit ? AEGIS_ACTION_AUDIT : AEGIS_ACTION_DENY;
	}
	*rule = AEGIS_NO_RULE;
	if (!w.done) {
		count_stat(AEGIS_STAT_UNRESOLVED);
		return cfg_deny_unresolved ? AEGIS_ACTION_UNRESOLVED : AEGIS_ACTION_ALLOW;
	}
	return AEGIS_ACTION_ALLOW;
}

#endif
