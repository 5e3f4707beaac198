/* agent.h: self-protection of the agent (policy kind "agent"). The agent is
 * every task in the agent's cgroup, identified by the cgroup's parent id and
 * name (struct agent_id), so a restarted or upgraded agent that systemd puts
 * in a re-created cgroup of the same unit is the agent again and can take
 * over the pinned instances (docs/adr/0004). Others may not signal it (but
 * the exempt PIDs, PID 1 by default), ptrace it, open its maps and links
 * with bpf(), or remove, rename or unmount its pins. */
#ifndef AEGIS_AGENT_H
#define AEGIS_AGENT_H

#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "kernfs.h"
#include "decide.h"
#include "event.h"

#define AEGIS_SIGCHLD  17
#define AEGIS_SIGCONT  18
#define AEGIS_SIGURG   23
#define AEGIS_SIGWINCH 28
#define AEGIS_SIGIO    29

#define AEGIS_PTRACE_MODE_ATTACH 0x02

/* Pins live at most this many levels below the pin root
 * (ROOT/instance/links/name). */
#define AEGIS_PIN_DEPTH 4

/* The cgroup name hashed: its first 63 bytes. */
#define AEGIS_CGROUP_NAME_LEN 64

/* agent_cfg returns the agent protection, NULL when the policy has none. */
static __always_inline struct agent_id *agent_cfg(void)
{
	__u32 key = 0;
	struct agent_id *a = bpf_map_lookup_elem(&agent, &key);
	if (!a || a->rule == 0)
		return NULL;
	return a;
}

static __always_inline __u64 cgroup_name_hash(const char *name)
{
	char buf[AEGIS_CGROUP_NAME_LEN];
	if (bpf_probe_read_kernel_str(buf, sizeof(buf), name) < 0)
		return 0;
	__u64 h = FNV64_OFFSET;
	for (int i = 0; i < AEGIS_CGROUP_NAME_LEN - 1; i++) {
		if (buf[i] == 0)
			break;
		h ^= (__u8)buf[i];
		h *= FNV64_PRIME;
	}
	return h;
}

/* task_is_agent reports whether task t runs in the agent's cgroup. */
static __always_inline bool task_is_agent(struct task_struct *t, const struct agent_id *a)
{
	struct kernfs_node *kn = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn);
	if (!kn)
		return false;
	struct kernfs_node *parent = kn_parent(kn);
	if (!parent || BPF_CORE_READ(parent, id) != a->parent_cgroup)
		return false;
	return cgroup_name_hash(BPF_CORE_READ(kn, name)) == a->name_hash;
}

static __always_inline bool current_is_agent(const struct agent_id *a)
{
	return task_is_agent((struct task_struct *)bpf_get_current_task(), a);
}

/* current_exempt reports whether the current process is one the policy
 * lets signal the agent (exempt_pids, by PID in the initial namespace: a
 * container's PID 1 is not PID 1). */
static __always_inline bool current_exempt(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&agent_exempt, &tgid) != NULL;
}

/* agent_action is what the agent rule does to the current task: deny,
 * audit, or allow when the rule's scope leaves the task out. */
static __always_inline __u32 agent_action(const struct agent_id *a)
{
	struct match m = {};
	consider(&m, a->rule);
	if (m.ref == 0)
		return AEGIS_ACTION_ALLOW;
	return m.audit ? AEGIS_ACTION_AUDIT : AEGIS_ACTION_DENY;
}

/* agent_report reports an act against the agent; ino and dev carry what
 * the hook says they do (enum aegis_hook). Returns the action. */
static __always_inline __u32 agent_report(const struct agent_id *a, __u32 hook, __u32 access, __u64 ino, __u32 dev)
{
	__u32 action = agent_action(a);
	struct event *e = report(hook, action, access, a->rule - 1);
	if (e) {
		e->ino = ino;
		e->dev = dev;
		bpf_ringbuf_submit(e, 0);
	}
	return action;
}

/* A signal that neither ends nor stops a process by default. */
static __always_inline bool signal_harmless(int sig)
{
	return sig == 0 || sig == AEGIS_SIGCHLD || sig == AEGIS_SIGCONT || sig == AEGIS_SIGURG || sig == AEGIS_SIGWINCH;
}

/* guard_signal decides signal sig from the current task to task p. */
static __always_inline __u32 guard_signal(struct task_struct *p, int sig, bool from_user)
{
	struct agent_id *a = agent_cfg();
	if (!a || signal_harmless(sig) || !task_is_agent(p, a))
		return AEGIS_ACTION_ALLOW;
	if (current_is_agent(a))
		return AEGIS_ACTION_ALLOW;
	if (from_user && current_exempt())
		return AEGIS_ACTION_ALLOW;
	return agent_report(a, AEGIS_HOOK_SIGNAL, 0, BPF_CORE_READ(p, tgid), sig);
}

/* guard_ptrace decides a ptrace access check of child in mode. Reading
 * (/proc/PID/stat-like checks) stays allowed; attaching, memory access and
 * pidfd_getfd (PTRACE_MODE_ATTACH) are the agent's own. */
static __always_inline __u32 guard_ptrace(struct task_struct *child, unsigned int mode)
{
	struct agent_id *a = agent_cfg();
	if (!a || !(mode & AEGIS_PTRACE_MODE_ATTACH) || !task_is_agent(child, a))
		return AEGIS_ACTION_ALLOW;
	if (current_is_agent(a))
		return AEGIS_ACTION_ALLOW;
	return agent_report(a, AEGIS_HOOK_PROTECT, AEGIS_PROTECT_AGENT, BPF_CORE_READ(child, tgid), mode);
}

static __always_inline bool is_guarded(__u32 kind, __u32 id)
{
	struct obj_key k = { .kind = kind, .id = id };
	return bpf_map_lookup_elem(&guarded, &k) != NULL;
}

/* guard_object_id decides a bpf() access by others to object id of kind:
 * a new descriptor of a guarded map (whatever its mode: a program loaded
 * with a read-only descriptor may still write the map) or link. */
static __always_inline __u32 guard_object_id(__u32 kind, __u32 id, __u32 cmd)
{
	struct agent_id *a = agent_cfg();
	if (!a || !is_guarded(kind, id) || current_is_agent(a))
		return AEGIS_ACTION_ALLOW;
	return agent_report(a, AEGIS_HOOK_BPF, kind, id, cmd);
}

/* under_pin_root reports whether dentry d is the pin root or below it,
 * within AEGIS_PIN_DEPTH levels. */
static __always_inline bool under_pin_root(struct dentry *d, const struct agent_id *a)
{
	if (BPF_CORE_READ(d, d_sb, s_dev) != a->pin_root_dev)
		return false;
	for (int i = 0; i <= AEGIS_PIN_DEPTH; i++) {
		if (BPF_CORE_READ(d, d_inode, i_ino) == a->pin_root_ino)
			return true;
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (!parent || parent == d)
			return false;
		d = parent;
	}
	return false;
}

/* guard_pin decides removing, renaming or linking the object at d: under
 * the pin root only the agent may. */
static __always_inline __u32 guard_pin(struct dentry *d, __u32 hook)
{
	struct agent_id *a = agent_cfg();
	if (!a || !d || !under_pin_root(d, a) || current_is_agent(a))
		return AEGIS_ACTION_ALLOW;
	return agent_report(a, hook, AEGIS_ACCESS_WRITE, BPF_CORE_READ(d, d_inode, i_ino), a->pin_root_dev);
}

/* guard_umount decides unmounting mnt: the bpffs of the pins may only be
 * unmounted by the agent and the exempt PIDs (PID 1 at shutdown). */
static __always_inline __u32 guard_umount(struct vfsmount *mnt)
{
	struct agent_id *a = agent_cfg();
	if (!a || BPF_CORE_READ(mnt, mnt_sb, s_dev) != a->pin_root_dev)
		return AEGIS_ACTION_ALLOW;
	if (current_is_agent(a) || current_exempt())
		return AEGIS_ACTION_ALLOW;
	return agent_report(a, AEGIS_HOOK_UMOUNT, 0, a->pin_root_ino, a->pin_root_dev);
}

#endif
