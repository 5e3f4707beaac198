/* abi.h: every struct and constant that both BPF C and Go see. Go gets the
 * structs from bpf2go -type, never from a hand-written mirror. Rules:
 * fixed-width types, natural alignment, explicit padding, no packed. */
#ifndef AEGIS_ABI_H
#define AEGIS_ABI_H

#include <linux/types.h>

#define AEGIS_PATH_LEN 256
#define AEGIS_COMM_LEN 16
#define AEGIS_NAME_LEN 256

/* The walk from a file up to its filesystem root stops after this many
 * ancestors; a deeper file is "unresolved" (denied in enforce mode). */
#define AEGIS_MAX_DEPTH 512

/* A rule index meaning "no rule" (unresolved decisions). */
#define AEGIS_NO_RULE 0xffffffffu

enum aegis_hook {
	AEGIS_HOOK_FILE_OPEN = 0,
	AEGIS_HOOK_EXEC = 1,
	AEGIS_HOOK_MMAP_EXEC = 2,
	AEGIS_HOOK_MPROTECT_EXEC = 3,
	AEGIS_HOOK_RENAME = 4,
	AEGIS_HOOK_UNLINK = 5,
	AEGIS_HOOK_LINK = 6,
	AEGIS_HOOK_PROTECT = 7, /* policy protections; access holds enum aegis_protect */
	AEGIS_HOOK_CONNECT = 8, /* socket_connect */
	AEGIS_HOOK_SENDMSG = 9, /* socket_sendmsg with a destination address */
	AEGIS_HOOK_SIGNAL = 10, /* a signal to the agent; ino = target tgid, dev = signal */
	AEGIS_HOOK_BPF = 11,    /* bpf() access to the agent's objects; ino = object id, dev = bpf command */
	AEGIS_HOOK_UMOUNT = 12, /* unmounting the bpffs holding the agent's pins */
	AEGIS_HOOK_MAX = 16,
};

enum aegis_action {
	AEGIS_ACTION_ALLOW = 0,
	AEGIS_ACTION_DENY = 1,       /* enforce: -EPERM */
	AEGIS_ACTION_AUDIT = 2,      /* audit: allowed, would have been denied */
	AEGIS_ACTION_UNRESOLVED = 3, /* walk bound hit: denied in enforce mode */
	AEGIS_ACTION_MAX = 4,
};

/* Access kinds: the index into rule_ref's arrays. */
enum aegis_access {
	AEGIS_ACCESS_READ = 0,
	AEGIS_ACCESS_WRITE = 1,
	AEGIS_ACCESS_EXEC = 2,
	AEGIS_ACCESS_MAX = 3,
};

/* Stat counters (per CPU), beside the hook x action decision counters. */
enum aegis_stat {
	AEGIS_STAT_RINGBUF_DROPS = 0,
	AEGIS_STAT_UNRESOLVED = 1,
	AEGIS_STAT_MAX = 4,
};

/* An inode: the kernel's dev_t of its super block (MAJOR<<20 | MINOR, not
 * the userspace st_dev encoding) and its number. */
struct inode_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

/* A name in a directory: the directory's inode and the FNV-1a 64 hash of
 * the entry's name. Catches a protected name re-created or replaced. */
struct name_key {
	__u64 parent_ino;
	__u64 name_hash;
	__u32 dev;
	__u32 _pad;
};

/* What an inode or name is protected by: for each access kind, the rule
 * index + 1 (0 = none), for the object itself (self) and for everything
 * below it when it is a directory (below). */
struct rule_ref {
	__u32 self[AEGIS_ACCESS_MAX];
	__u32 below[AEGIS_ACCESS_MAX];
};

enum aegis_rule_flags {
	AEGIS_RULE_AUDIT = 1, /* allow and report instead of deny */
};

/* Scope bits: with neither, the rule applies everywhere. */
enum aegis_scope_mode {
	AEGIS_SCOPE_ONLY = 1,   /* only in the cgroups of scope_id (and below) */
	AEGIS_SCOPE_EXCEPT = 2, /* not in the cgroups of exempt_id (and below) */
};

/* One compiled rule, indexed by its dense rule index. */
struct rule_info {
	__u32 flags;
	__u32 scope_mode;
	__u32 scope_id;
	__u32 exempt_id;
};

/* A cgroup listed in a scope, by its path below the cgroup2 root: the
 * FNV-1a 64 hash of the path ("/system.slice/ssh.service"), so a cgroup
 * created or re-created after the policy is applied is matched too. */
struct scope_key {
	__u64 path_hash;
	__u32 scope_id;
	__u32 _pad;
};

/* Scopes match cgroups at most this deep below the root, whose path
 * components are shorter than AEGIS_CGROUP_NAME_MAX - 1 bytes (the loader
 * refuses longer ones in a policy). */
#define AEGIS_SCOPE_DEPTH 32
#define AEGIS_CGROUP_NAME_MAX 128

/* The key of the scope cache: a cgroup (id) and a scope. */
struct scope_cache_key {
	__u64 cgroup_id;
	__u32 scope_id;
	__u32 _pad;
};

/* Policy-driven protections: the key of the protections map, matching
 * policy.ProtectKind. */
enum aegis_protect {
	AEGIS_PROTECT_PTRACE = 1,
	AEGIS_PROTECT_MODULE_LOAD = 2,
	AEGIS_PROTECT_AGENT = 3, /* ptrace of the agent (the agent rule, see struct agent_id) */
	AEGIS_PROTECT_MAX = 4,
};

/* The rules (index + 1, 0 = none) holding one protection; all are
 * considered, so rules with different scopes each apply. */
#define AEGIS_PROTECT_REFS 8
struct protect_ref {
	__u32 ref[AEGIS_PROTECT_REFS];
};

/* Network rules. The maps hold, for each distinct prefix of the policy,
 * every rule whose prefix covers it (index + 1, enforcing rules first), so
 * the longest matching prefix alone finds every rule that matches an
 * address. */
#define AEGIS_NET_REFS 8
struct net_ref {
	__u32 ref[AEGIS_NET_REFS];
};

/* Prefix lengths 0..32 and 0..128. */
#define AEGIS_NET4_LENS 33
#define AEGIS_NET6_LENS 129

/* A closed port range, host byte order. */
struct port_range {
	__u16 lo;
	__u16 hi;
};

/* What a network rule matches besides the address, by rule index. */
#define AEGIS_MAX_PORT_RANGES 16
struct net_rule {
	__u32 protocol; /* IPPROTO_*, 0 = any */
	__u32 nports;   /* 0 = every port */
	struct port_range ports[AEGIS_MAX_PORT_RANGES];
};

/* The agent protection. The agent is identified by its cgroup: the kernfs
 * id of the cgroup's parent and the FNV-1a 64 hash of the cgroup's own name
 * (its first 63 bytes). A cgroup that systemd removes and re-creates on a
 * restart keeps that identity, whatever binary runs in it (docs/adr/0004). */
struct agent_id {
	__u64 parent_cgroup;
	__u64 name_hash;
	__u64 pin_root_ino; /* the pin root directory on bpffs */
	__u32 pin_root_dev;
	__u32 rule; /* rule index + 1 holding the protection, 0 = off */
};

/* An object of the agent guarded against bpf() access by others. */
enum aegis_obj_kind {
	AEGIS_OBJ_MAP = 1,
	AEGIS_OBJ_LINK = 2,
};

struct obj_key {
	__u32 kind;
	__u32 id;
};

/* Per-rule, per-CPU hit counters. */
struct rule_counter {
	__u64 denied;
	__u64 audited;
};

/* One decision reported to user space through the ring buffer. */
struct event {
	__u64 time_ns; /* bpf_ktime_get_boot_ns */
	__u64 cgroup_id;
	__u64 ino;
	__u32 dev;
	__u32 pid;  /* thread id */
	__u32 tgid; /* process id */
	__u32 ppid;
	__u32 uid;
	__u32 rule; /* rule index, or AEGIS_NO_RULE */
	__u8 hook;
	__u8 action;
	__u8 access;
	__u8 family;   /* network events: AF_INET / AF_INET6 */
	__u16 port;    /* network events, host byte order */
	__u8 protocol; /* network events: IPPROTO_* */
	__u8 _pad0;
	__u8 addr[16]; /* network events */
	char comm[AEGIS_COMM_LEN];
	char path[AEGIS_PATH_LEN];
};

#endif
