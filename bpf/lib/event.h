/* event.h: reporting a decision: counters always, a ring buffer record for
 * every deny or would-deny. A full ring buffer is counted, never waited on. */
#ifndef AEGIS_EVENT_H
#define AEGIS_EVENT_H

#include <bpf/bpf_core_read.h>
#include "maps.h"

static __always_inline void count_rule(__u32 rule, __u32 action)
{
	struct rule_counter *c = bpf_map_lookup_elem(&rule_counters, &rule);
	if (!c)
		return;
	if (action == AEGIS_ACTION_AUDIT)
		c->audited += 1;
	else
		c->denied += 1;
}

/* report counts the decision and, for a deny or audit, reserves an event.
 * The caller fills the object fields and submits it. Returns NULL for an
 * allow or a full ring buffer. */
static __always_inline struct event *report(__u32 hook, __u32 action, __u32 access, __u32 rule)
{
	count_decision(hook, action);
	if (action == AEGIS_ACTION_ALLOW)
		return NULL;
	if (rule != AEGIS_NO_RULE)
		count_rule(rule, action);

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_stat(AEGIS_STAT_RINGBUF_DROPS);
		return NULL;
	}
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	e->time_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = (__u32)pid_tgid;
	e->tgid = pid_tgid >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->rule = rule;
	e->hook = hook;
	e->action = action;
	e->access = access;
	e->family = 0;
	e->port = 0;
	e->protocol = 0;
	e->_pad0 = 0;
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->path[0] = 0;
	e->ino = 0;
	e->dev = 0;
	return e;
}

/* verdict maps an action to the hook's return value. Newer verifiers
 * require an LSM program to provably return a value in [-4095, 0]; the
 * barrier keeps clang from folding the test into arithmetic the verifier
 * cannot bound. */
static __always_inline int verdict(__u32 action)
{
	int deny = action == AEGIS_ACTION_DENY || action == AEGIS_ACTION_UNRESOLVED;
	asm volatile("" : "+r"(deny));
	if (deny)
		return -1; /* -EPERM */
	return 0;
}

#endif
