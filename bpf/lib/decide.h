/* decide.h: the decision functions, free of hook specifics so the same code
 * runs in the LSM hooks and in the host benchmark program (bench.bpf.c). */
#ifndef AEGIS_DECIDE_H
#define AEGIS_DECIDE_H

#include "maps.h"

/* A match: rule index + 1 (0 = none) and whether that rule only audits. */
struct match {
	__u32 ref;
	__u32 audit;
};

/* cgroup levels checked for a scope, from the current cgroup upwards. */
#define AEGIS_SCOPE_DEPTH 16

/* in_scope reports whether the current task's cgroup, or one of its
 * ancestors, is listed in scope_id. */
static __always_inline bool cgroup_listed(__u32 scope_id)
{
	struct scope_key key = { .scope_id = scope_id };
	key.cgroup_id = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&scopes, &key))
		return true;
	for (int level = 0; level < AEGIS_SCOPE_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (id == 0 || id == key.cgroup_id)
			break;
		struct scope_key k = { .cgroup_id = id, .scope_id = scope_id };
		if (bpf_map_lookup_elem(&scopes, &k))
			return true;
	}
	return false;
}

/* rule_applies looks up rule ref (index + 1) and reports whether it applies
 * to the current task; audit is set for audit-mode rules. */
static __always_inline bool rule_applies(__u32 ref, __u32 *audit)
{
	__u32 idx = ref - 1;
	struct rule_info *info = bpf_map_lookup_elem(&rules, &idx);
	if (!info)
		return false;
	if ((info->scope_mode & AEGIS_SCOPE_ONLY) && !cgroup_listed(info->scope_id))
		return false;
	if ((info->scope_mode & AEGIS_SCOPE_EXCEPT) && cgroup_listed(info->exempt_id))
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

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME  0x100000001b3ULL

struct fnv_state {
	__u64 h;
	const unsigned char *src; /* kernel memory */
	__u32 len;
};

/* fnv_step hashes bytes [8*i, 8*i+8) of the name, stopping at len. It reads
 * eight bytes at a time from kernel memory; bytes past len are never hashed. */
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
