//go:build ignore

/* bench.bpf.c: the file decision compiled into socket filter programs, so it
 * can be timed on a host whose kernel refuses BPF LSM programs, with
 * BPF_PROG_TEST_RUN (tests/bench). The maps and decision functions are the
 * ones aegis.bpf.c uses (lib/maps.h, lib/decide.h, lib/file.h); only the
 * way the object reaches the decision differs. Not loaded by the agent. */

/* Needs a kernel whose socket filters may call, with CAP_PERFMON,
 * bpf_get_current_cgroup_id (decide.h, for scoped rules; the benchmark's
 * rules are unscoped), bpf_get_current_task and bpf_probe_read_kernel
 * (bench_walk): 6.18 allows all three. */

#include "include/kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "lib/maps.h"
#include "lib/decide.h"
#include "lib/file.h"
#include "lib/net.h"
#include "lib/event.h"

char LICENSE[] SEC("license") = "GPL";

/* What bench_decide decides on. Run k (counted by cursor) decides on the
 * object at (ino, parent_ino, name_hash) + c * (ino_step, parent_step,
 * hash_step), where c = k * stride mod count: count 1 decides on one object
 * (hot caches), a larger count walks the whole rule set in a scattered
 * order (cold caches). */
struct bench_input {
	__u64 ino;
	__u64 parent_ino;
	__u64 name_hash;
	__u64 ino_step;
	__u64 parent_step;
	__u64 hash_step;
	__u32 dev;
	__u32 access;
	__u32 count;  /* >= 1 */
	__u32 stride; /* < count, coprime with it */
	__u32 fd;     /* bench_walk: the descriptor of the file to decide on */
	__u32 _pad;
};

struct bench_input input;
__u32 cursor;

/* result packs a decision into the program's return value: the action in
 * bits 24-31, bit 23 set when the walk would climb, and the rule index + 1
 * (0 = none) in bits 0-22. */
static __always_inline __u32 result(__u32 action, __u32 rule)
{
	return action << 24 | ((rule + 1) & 0x7fffff);
}

/* account counts the decision as report() in lib/event.h does; the ring
 * buffer event of a deny is not part of the decision and is not timed. */
static __always_inline void account(__u32 action, __u32 rule)
{
	count_decision(AEGIS_HOOK_FILE_OPEN, action);
	if (action != AEGIS_ACTION_ALLOW && rule != AEGIS_NO_RULE) {
		struct rule_counter *c = bpf_map_lookup_elem(&rule_counters, &rule);
		if (c) {
			if (action == AEGIS_ACTION_AUDIT)
				c->audited += 1;
			else
				c->denied += 1;
		}
	}
}

/* The cost of a test run that does nothing: subtracted from the others. */
SEC("socket")
int bench_empty(struct __sk_buff *skb)
{
	return 0;
}

/* One file_open decision on the object itself (level 0 of walk_step in
 * lib/file.h): its inode, its name when the parent directory is watched,
 * and whether its super block holds subtree rules. The name hash comes
 * precomputed: hashing the name in kernel memory is not part of this cost
 * (bench_walk includes it). */
SEC("socket")
int bench_decide(struct __sk_buff *skb)
{
	struct match m = {};
	__u32 c = cursor;
	__u32 next = c + input.stride;
	if (next >= input.count)
		next -= input.count;
	cursor = next;

	__u32 dev = input.dev;
	__u32 access = input.access;
	__u64 ino = input.ino + c * input.ino_step;
	__u64 pino = input.parent_ino + c * input.parent_step;
	bool climb = dev_has_subtrees(dev);

	if (check_inode(&m, dev, ino, access, false))
		goto out;
	if (dir_watched(dev, pino) && check_name(&m, dev, pino, input.name_hash + c * input.hash_step, access, false))
		goto out;
out:;
	__u32 action = AEGIS_ACTION_ALLOW, rule = AEGIS_NO_RULE;
	if (m.ref) {
		rule = m.ref - 1;
		action = m.audit ? AEGIS_ACTION_AUDIT : AEGIS_ACTION_DENY;
	}
	account(action, rule);
	/* Without a match and with climb set, the hook would go on to the
	 * parent directory: bench_walk times that. */
	return result(action, rule) | (!m.ref && climb) << 23;
}

/* Kernel types to reach the current task's open files; the ___bench
 * suffix keeps them apart from kernel.h, CO-RE matches them by base name. */
struct fdtable___bench {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct___bench {
	struct fdtable___bench *fdt;
} __attribute__((preserve_access_index));

struct task_struct___bench {
	struct files_struct___bench *files;
} __attribute__((preserve_access_index));

/* The whole kernel-side decision of the file_open hook for a read, on a
 * real file: descriptor input.fd of the task running the test. It runs
 * decide_dentry from lib/file.h as is: dentry and inode reads, the name
 * hash, and the walk up to the root on super blocks with subtree rules. */
SEC("socket")
int bench_walk(struct __sk_buff *skb)
{
	struct task_struct___bench *task = (void *)bpf_get_current_task();
	struct fdtable___bench *fdt = BPF_CORE_READ(task, files, fdt);
	__u32 fd = input.fd;
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return -1;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return -1;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	__u32 rule;
	__u32 action = decide_dentry((__u64)d, dev, AEGIS_ACCESS_READ, &rule);
	account(action, rule);
	return result(action, rule);
}

/* What bench_net decides on: run k (counted by net_cursor) connects to
 * the IPv4 address base + c * step, where c = k * stride mod count, as
 * bench_decide walks its objects. */
struct bench_net_input {
	__u32 base; /* host byte order */
	__u32 step;
	__u32 count;  /* >= 1 */
	__u32 stride; /* < count, coprime with it */
	__u32 protocol;
	__u32 port;
};

struct bench_net_input net_input;
__u32 net_cursor;

/* One socket_connect decision (lib/net.h) as check_dest makes it, for an
 * IPv4 destination: the trie lookup and the rules' protocol and ports. */
SEC("socket")
int bench_net(struct __sk_buff *skb)
{
	__u32 c = net_cursor;
	__u32 next = c + net_input.stride;
	if (next >= net_input.count)
		next -= net_input.count;
	net_cursor = next;

	struct net_query q = { .family = AF_INET, .protocol = net_input.protocol, .port = net_input.port };
	__u32 a = bpf_htonl(net_input.base + c * net_input.step);
	__builtin_memcpy(q.addr, &a, sizeof(a));
	net_query_unmap(&q);
	__u32 rule;
	__u32 action = decide_net(&q, &rule);
	account(action, rule);
	return result(action, rule);
}

/* What bench_produce writes: run k reports an audit of rule k mod keys on
 * inode k mod keys, so the reader's aggregator folds `keys` distinct
 * entries. Set before the runs; keys >= 1. */
struct bench_produce_input {
	__u32 keys;
	__u32 _pad;
};

struct bench_produce_input produce_input;
__u64 produce_cursor;

/* One audited file_open event through report() of lib/event.h, the path the
 * hooks take: the decision counters, the rule counter, a ring buffer
 * reserve (a full buffer is counted in AEGIS_STAT_RINGBUF_DROPS) and the
 * task fields; then the object fields fill_file would write, and submit.
 * The event pipeline benchmark (tests/bench/pipeline.go) runs it at fixed
 * rates against the agent's reader in another process. */
SEC("socket")
int bench_produce(struct __sk_buff *skb)
{
	__u64 n = produce_cursor++;
	__u32 keys = produce_input.keys ? produce_input.keys : 1;
	__u32 k = n % keys;
	struct event *e = report(AEGIS_HOOK_FILE_OPEN, AEGIS_ACTION_AUDIT, AEGIS_ACCESS_READ, k);
	if (!e)
		return 0;
	e->ino = (1ULL << 40) + k;
	e->dev = 1;
	__builtin_memcpy(e->path, "/var/lib/bench/file", 20);
	bpf_ringbuf_submit(e, 0);
	return 1;
}
