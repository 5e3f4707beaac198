/* maps.h: the maps of one AegisBPF instance. Sizes here are placeholders:
 * the loader sets every max_entries from the compiled policy before load,
 * so kernel memory follows the policy (see agent/engine). */
#ifndef AEGIS_MAPS_H
#define AEGIS_MAPS_H

#include "../include/kernel.h"
#include <bpf/bpf_helpers.h>
#include "../abi.h"

/* Inodes protected by a rule: files, and directories whose subtree is. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct inode_key);
	__type(value, struct rule_ref);
} inode_rules SEC(".maps");

/* Names protected in a directory, so a replaced or re-created object at a
 * protected path is still matched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct name_key);
	__type(value, struct rule_ref);
} name_rules SEC(".maps");

/* Directories holding at least one name in name_rules: the name of an entry
 * is read and hashed only when its parent is here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct inode_key);
	__type(value, __u32);
} watched_dirs SEC(".maps");

/* Super blocks holding a subtree rule: only files on these walk up. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} subtree_devs SEC(".maps");

/* Ancestor directories of protected paths: they may not be renamed or
 * removed, so a protected path cannot be moved from under its rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct inode_key);
	__type(value, __u32);
} pinned_dirs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rule_info);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct scope_key);
	__type(value, __u32);
} scopes SEC(".maps");

/* Whether a cgroup is in a scope (enum scope_result), worked out once per
 * cgroup and scope: cgroup ids are never reused and cgroup2 has no rename,
 * so an entry never goes stale; the instance's maps die with its policy. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct scope_cache_key);
	__type(value, __u32);
} scope_cache SEC(".maps");

/* Scratch room for one cgroup name. */
struct cgroup_name {
	char name[AEGIS_CGROUP_NAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_name);
} cgroup_name_scratch SEC(".maps");

/* Policy-driven protections by enum aegis_protect. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AEGIS_PROTECT_MAX);
	__type(key, __u32);
	__type(value, struct protect_ref);
} protections SEC(".maps");

/* Network rules by destination prefix (see struct net_ref): one hash map
 * per prefix length the policy uses, keyed by the address masked to that
 * length, in an array indexed by the length. The kernel probes the lengths
 * in cfg_net4_lens, longest first; a length with few prefixes has a small,
 * cache-hot map of its own. At 10k prefixes an LPM trie walk cost several
 * times more (docs/PERFORMANCE.md). The inner maps give sizes, not BTF
 * types: clang emits the types of an inner map's key and value only as
 * forward declarations; this puts struct net_ref in the BTF for bpf2go. */
const struct net_ref *unused_net_ref __attribute__((unused));

struct net4_by_len {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, 4); /* the address masked to the length */
	__uint(value_size, sizeof(struct net_ref));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, AEGIS_NET4_LENS);
	__type(key, __u32);
	__array(values, struct net4_by_len);
} net4_rules SEC(".maps");

struct net6_by_len {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, 16); /* the address masked to the length */
	__uint(value_size, sizeof(struct net_ref));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, AEGIS_NET6_LENS);
	__type(key, __u32);
	__array(values, struct net6_by_len);
} net6_rules SEC(".maps");

/* Protocol and ports of network rules, by rule index. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct net_rule);
} net_rules SEC(".maps");

/* The agent protection: one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct agent_id);
} agent SEC(".maps");

/* Processes (tgid) that may signal the agent, beside the agent itself. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} agent_exempt SEC(".maps");

/* The agent's maps and links, which other processes may not open. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct obj_key);
	__type(value, __u32);
} guarded SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rule_counter);
} rule_counters SEC(".maps");

/* Decisions by hook and action: index hook * AEGIS_ACTION_MAX + action. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_HOOK_MAX * AEGIS_ACTION_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decisions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Set by the loader before load. */
const volatile __u32 cfg_deny_unresolved = 1; /* enforce mode: deny what cannot be resolved */

/* The prefix lengths present in net4_rules and net6_rules, longest first:
 * the first cfg_net4_nlens (cfg_net6_nlens) entries are used. */
const volatile __u32 cfg_net4_nlens = 0;
const volatile __u8 cfg_net4_lens[AEGIS_NET4_LENS] = {};
const volatile __u32 cfg_net6_nlens = 0;
const volatile __u8 cfg_net6_lens[AEGIS_NET6_LENS] = {};

static __always_inline void count_stat(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &stat);
	if (v)
		*v += 1;
}

static __always_inline void count_decision(__u32 hook, __u32 action)
{
	__u32 idx = hook * AEGIS_ACTION_MAX + action;
	__u64 *v = bpf_map_lookup_elem(&decisions, &idx);
	if (v)
		*v += 1;
}

#endif
