/* decide.h: the decision functions, free of hook specifics so the same code
 * runs in the LSM hooks and in the host benchmark program (bench.bpf.c). */
#ifndef AEGIS_DECIDE_H
#define AEGIS_DECIDE_H

#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "kernfs.h"

/* A match: rule index + 1 (0 = none) and whether that rule only audits. */
struct match {
	__u32 ref;
	__u32 audit;
};

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME  0x100000001b3ULL

/* What cgroup_scope found. */
enum scope_result {
	SCOPE_NOT_LISTED = 1,
	SCOPE_LISTED = 2,
	/* The cgroup is deeper than AEGIS_SCOPE_DEPTH or a name on its path
	 * is too long, and no shallower prefix is listed: callers fail closed
	 * (an only-scope applies, an exemption does not). */
	SCOPE_UNKNOWN = 3,
};

struct fnv_state {
	__u64 h;
	const unsigned char *src; /* kernel memory */
	__u32 len;
};

/* fnv_step hashes bytes [8*i, 8*i+8) of the string at src, stopping at len.
 * It reads eight bytes at a time from kernel memory (a dentry name, or the
 * cgroup name copied to cgroup_name_scratch); bytes past len are read but
 * never hashed. A bpf_loop step: verified once, not once per byte. */
static long fnv_step(__u64 i, void *data)
{
	struct fnv_state *s = data;
	__u64 chunk = 0;
	__u32 off = i * 8;
	if (bpf_probe_read_kernel(&chunk, sizeof(chunk), s->src + off) < 0)
		return 1;
	for (int b = 0; b < 8; b++) {
		if (off + b >= s->len)
			return 1;
		s->h ^= (chunk >> (8 * b)) & 0xff;
		s->h *= FNV64_PRIME;
	}
	return 0;
}

/* A climb up the cgroup tree: kn_climb_step moves kn to its parent and
 * counts the step, and stops at the root (whose parent is NULL), where kn
 * stays. A bpf_loop step: the verifier checks one step, not one per level. */
struct kn_climb {
	__u64 kn; /* struct kernfs_node * */
	__u32 steps;
};

static long kn_climb_step(__u64 i, void *data)
{
	struct kn_climb *c = data;
	struct kernfs_node *parent = kn_parent((struct kernfs_node *)c->kn);
	if (!parent)
		return 1;
	c->kn = (__u64)parent;
	c->steps++;
	return 0;
}

/* The state of one cgroup_scope walk, shared with scope_level. */
struct scope_walk {
	__u64 leaf; /* struct kernfs_node * of the task's cgroup */
	__u64 h;    /* FNV-1a 64 of the path down to the last level hashed */
	__u32 depth;
	__u32 scope_id;
	__u32 res;
};

/* scope_level hashes the name of the cgroup level + 1 below the root into
 * the walk's path hash and looks the path up. A bpf_loop step, as are the
 * climb to that level and the hash of its name inside it, so the verifier
 * checks each once rather than once per level or per byte: unrolled, these
 * loops made every program that can reach cgroup_scope cost the verifier
 * about 24,000 instructions, most of the agent's start-up in a slow VM
 * (tests/kernel/verifier_test.go keeps it down). */
static long scope_level(__u64 level, void *data)
{
	struct scope_walk *w = data;
	__u32 zero = 0;
	struct cgroup_name *buf = bpf_map_lookup_elem(&cgroup_name_scratch, &zero);
	if (!buf) {
		w->res = SCOPE_UNKNOWN;
		return 1;
	}
	/* The node level + 1 below the root: depth - 1 - level steps up. */
	struct kn_climb c = { .kn = w->leaf };
	if (level + 1 < w->depth)
		bpf_loop(w->depth - 1 - level, kn_climb_step, &c, 0);
	struct kernfs_node *kn = (struct kernfs_node *)c.kn;
	long n = bpf_probe_read_kernel_str(buf->name, sizeof(buf->name), BPF_CORE_READ(kn, name));
	if (n <= 0 || n >= AEGIS_CGROUP_NAME_MAX) {
		w->res = SCOPE_UNKNOWN;
		return 1;
	}
	struct fnv_state s = { .h = (w->h ^ '/') * FNV64_PRIME, .src = (const unsigned char *)buf->name, .len = n - 1 };
	bpf_loop((__u32)n / 8 + 1, fnv_step, &s, 0);
	__u64 h = s.h;
	w->h = h;
	struct scope_key k = { .path_hash = h, .scope_id = w->scope_id };
	if (bpf_map_lookup_elem(&scopes, &k)) {
		w->res = SCOPE_LISTED;
		return 1;
	}
	return 0;
}

/* cgroup_scope reports whether the current task's cgroup, or one of its
 * ancestors, is listed in scope_id: whether some prefix of its path below
 * the cgroup2 root hashes to a scopes entry. The names are hashed root
 * first (the walk up from the leaf is repeated per level: cgroup trees are
 * shallow), and the answer is cached per cgroup id. A global function:
 * verified once. */
__noinline int cgroup_scope(__u32 scope_id)
{
	struct scope_cache_key ck = { .cgroup_id = bpf_get_current_cgroup_id(), .scope_id = scope_id };
	__u32 *cached = bpf_map_lookup_elem(&scope_cache, &ck);
	if (cached)
		return *cached;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct kernfs_node *leaf = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn);
	if (!leaf)
		return SCOPE_UNKNOWN;
	struct scope_walk w = { .leaf = (__u64)leaf, .h = FNV64_OFFSET, .scope_id = scope_id, .res = SCOPE_NOT_LISTED };
	struct kn_climb c = { .kn = (__u64)leaf };
	bpf_loop(AEGIS_SCOPE_DEPTH + 1, kn_climb_step, &c, 0);
	w.depth = c.steps;
	if (w.depth > AEGIS_SCOPE_DEPTH)
		w.res = SCOPE_UNKNOWN;
	else if (w.depth > 0)
		bpf_loop(w.depth, scope_level, &w, 0);
	bpf_map_update_elem(&scope_cache, &ck, &w.res, BPF_ANY);
	return w.res;
}

/* rule_applies looks up rule ref (index + 1) and reports whether it applies
 * to the current task; audit is set for audit-mode rules. */
static __always_inline bool rule_applies(__u32 ref, __u32 *audit)
{
	__u32 idx = ref - 1;
	struct rule_info *info = bpf_map_lookup_elem(&rules, &idx);
	if (!info)
		return false;
	if ((info->scope_mode & AEGIS_SCOPE_ONLY) && cgroup_scope(info->scope_id) == SCOPE_NOT_LISTED)
		return false;
	if ((info->scope_mode & AEGIS_SCOPE_EXCEPT) && cgroup_scope(info->exempt_id) == SCOPE_LISTED)
		return false;
	*audit = info->flags & AEGIS_RULE_AUDIT;
	return true;
}

/* consider folds candidate ref into m. An enforcing match beats an auditing
 * one; returns true when m is final (an enforcing match). */
static __always_inline bool consider(struct match *m, __u32 ref)
{
	__u32 audit = 0;
	if (ref == 0 || !rule_applies(ref, &audit))
		return false;
	if (m->ref == 0 || (m->audit && !audit)) {
		m->ref = ref;
		m->audit = audit;
	}
	return !audit;
}

static __always_inline __u32 pick(const struct rule_ref *r, __u32 access, bool below)
{
	if (access >= AEGIS_ACCESS_MAX)
		return 0;
	return below ? r->below[access] : r->self[access];
}

/* check_inode folds the rule protecting inode (dev, ino) for access. */
static __always_inline bool check_inode(struct match *m, __u32 dev, __u64 ino, __u32 access, bool below)
{
	struct inode_key key = { .ino = ino, .dev = dev };
	struct rule_ref *r = bpf_map_lookup_elem(&inode_rules, &key);
	if (!r)
		return false;
	return consider(m, pick(r, access, below));
}

/* check_name folds the rule protecting the name hash in directory
 * (dev, parent_ino) for access. */
static __always_inline bool check_name(struct match *m, __u32 dev, __u64 parent_ino, __u64 hash, __u32 access, bool below)
{
	struct name_key key = { .parent_ino = parent_ino, .name_hash = hash, .dev = dev };
	struct rule_ref *r = bpf_map_lookup_elem(&name_rules, &key);
	if (!r)
		return false;
	return consider(m, pick(r, access, below));
}

static __always_inline bool dir_watched(__u32 dev, __u64 ino)
{
	struct inode_key key = { .ino = ino, .dev = dev };
	return bpf_map_lookup_elem(&watched_dirs, &key) != NULL;
}

static __always_inline bool dev_has_subtrees(__u32 dev)
{
	return bpf_map_lookup_elem(&subtree_devs, &dev) != NULL;
}

/* fnv1a64_kernel hashes len bytes of the kernel string at src (a dentry
 * name). bpf_loop keeps verification to one pass over the step. */
static __always_inline __u64 fnv1a64_kernel(const unsigned char *src, __u32 len)
{
	struct fnv_state s = { .h = FNV64_OFFSET, .src = src, .len = len };
	if (len > AEGIS_NAME_LEN)
		return 0;
	bpf_loop((len + 7) / 8, fnv_step, &s, 0);
	return s.h;
}

#endif
