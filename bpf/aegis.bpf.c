//go:build ignore

/* aegis.bpf.c: the BPF LSM hooks of AegisBPF. Hooks are thin: they pick the
 * object and access kind, call the decision in lib/, and report. */

#include "include/kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "lib/maps.h"
#include "lib/decide.h"
#include "lib/file.h"
#include "lib/event.h"
#include "lib/protect.h"
#include "lib/net.h"
#include "lib/agent.h"

char LICENSE[] SEC("license") = "GPL";

/* Make the ABI types visible in BTF for bpf2go -type. */
const struct event *unused_event __attribute__((unused));
const struct rule_counter *unused_counter __attribute__((unused));
const struct protect_ref *unused_protect_ref __attribute__((unused));
const struct port_range *unused_port_range __attribute__((unused));

static __always_inline void fill_file(struct event *e, struct file *file, struct dentry *d, __u32 dev, __u64 ino, bool with_path)
{
	e->dev = dev;
	e->ino = ino;
	if (with_path && file) {
		if (bpf_d_path(&file->f_path, e->path, sizeof(e->path)) > 0)
			return;
	}
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), name);
}

/* addr_of returns p as a plain address. decide_dentry takes dentries as
 * addresses; a trusted hook argument must first lose its pointer type. */
static __always_inline __u64 addr_of(const void *p)
{
	__u64 a = 0;
	bpf_probe_read_kernel(&a, sizeof(a), &p);
	return a;
}

/* emit reports a decision on the object at d and returns the verdict. */
static __always_inline int emit(struct file *file, struct dentry *d, __u32 dev, __u32 hook, __u32 access,
				__u32 action, __u32 rule, bool with_path)
{
	struct event *e = report(hook, action, access, rule);
	if (e) {
		fill_file(e, file, d, dev, BPF_CORE_READ(d, d_inode, i_ino), with_path);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(action);
}

/* check_dentry decides one access to the object at d and reports it. */
static __always_inline int check_dentry(struct file *file, struct dentry *d, __u32 hook, __u32 access, bool with_path)
{
	__u32 rule;
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	__u32 action = decide_dentry((__u64)d, dev, access, &rule);
	return emit(file, d, dev, hook, access, action, rule, with_path);
}

/* stronger orders actions: deny, unresolved, audit, allow. */
static __always_inline __u32 rank(__u32 action)
{
	switch (action) {
	case AEGIS_ACTION_DENY:
		return 3;
	case AEGIS_ACTION_UNRESOLVED:
		return 2;
	case AEGIS_ACTION_AUDIT:
		return 1;
	}
	return 0;
}

static __always_inline bool stronger(__u32 a, __u32 b)
{
	return rank(a) > rank(b);
}

/* file_dentry returns the dentry of the object file really opens. A backing
 * file that overlayfs opens for a merged-view file carries the overlay's
 * path but the real (lower or upper) inode: then walk from that inode's
 * dentry, so rules on the real file system hold through the overlay. */
static __always_inline struct dentry *file_dentry(struct file *file)
{
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (!inode || BPF_CORE_READ(inode, i_sb) == BPF_CORE_READ(d, d_sb))
		return d;
	struct hlist_node *alias = BPF_CORE_READ(inode, i_dentry.first);
	if (!alias)
		return d;
	return (struct dentry *)((void *)alias - bpf_core_field_offset(struct dentry, d_u.d_alias));
}

SEC("lsm/file_open")
int BPF_PROG(aegis_file_open, struct file *file)
{
	struct dentry *d = file_dentry(file);
	fmode_t mode = BPF_CORE_READ(file, f_mode);
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	__u32 action = AEGIS_ACTION_ALLOW, rule = AEGIS_NO_RULE, access = AEGIS_ACCESS_READ;

	/* One open is one decision and at most one event, whichever of its
	 * access kinds is most strongly refused. */
	if (mode & FMODE_WRITE) {
		action = decide_dentry((__u64)d, dev, AEGIS_ACCESS_WRITE, &rule);
		access = AEGIS_ACCESS_WRITE;
	}
	if ((mode & FMODE_READ) && action != AEGIS_ACTION_DENY) {
		__u32 r_rule;
		__u32 r_action = decide_dentry((__u64)d, dev, AEGIS_ACCESS_READ, &r_rule);
		if (stronger(r_action, action)) {
			action = r_action;
			rule = r_rule;
			access = AEGIS_ACCESS_READ;
		}
	}
	return emit(file, d, dev, AEGIS_HOOK_FILE_OPEN, access, action, rule, true);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(aegis_bprm_check, struct linux_binprm *bprm)
{
	struct file *file = bprm->file;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	return check_dentry(file, d, AEGIS_HOOK_EXEC, AEGIS_ACCESS_EXEC, false);
}

/* A denied binary mapped executable by hand (ld.so /denied/binary). */
SEC("lsm/mmap_file")
int BPF_PROG(aegis_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags)
{
	if (!file || !(prot & PROT_EXEC))
		return 0;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	return check_dentry(file, d, AEGIS_HOOK_MMAP_EXEC, AEGIS_ACCESS_EXEC, false);
}

/* A denied binary mapped readable, then made executable. */
SEC("lsm/file_mprotect")
int BPF_PROG(aegis_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot)
{
	if (!(prot & PROT_EXEC))
		return 0;
	if (BPF_CORE_READ(vma, vm_flags) & VM_EXEC)
		return 0;
	struct file *file = BPF_CORE_READ(vma, vm_file);
	if (!file)
		return 0;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	return check_dentry(NULL, d, AEGIS_HOOK_MPROTECT_EXEC, AEGIS_ACCESS_EXEC, false);
}

/* guard_object decides whether the object at d may be moved, linked or
 * removed. A pinned ancestor directory of a protected path may not be moved
 * or removed, so no protected path is moved from under its rule. An object
 * protected for any access (any_access) may not be renamed or hard-linked,
 * so it cannot be carried out of a subtree rule; one protected for writing
 * may not be removed or replaced either. */
static __always_inline int guard_object(struct dentry *d, __u32 hook, bool any_access)
{
	if (guard_pin(d, hook) == AEGIS_ACTION_DENY)
		return verdict(AEGIS_ACTION_DENY);
	__u32 rule = AEGIS_NO_RULE;
	__u32 action = AEGIS_ACTION_ALLOW;
	__u32 access = AEGIS_ACCESS_WRITE;
	struct inode *inode = BPF_CORE_READ(d, d_inode);
	if (!inode)
		return 0;
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	struct inode_key key = { .ino = BPF_CORE_READ(inode, i_ino), .dev = dev };
	__u32 *pinned = bpf_map_lookup_elem(&pinned_dirs, &key);
	if (pinned) {
		struct match m = {};
		consider(&m, *pinned);
		if (m.ref) {
			rule = m.ref - 1;
			action = m.audit ? AEGIS_ACTION_AUDIT : AEGIS_ACTION_DENY;
		}
	}
	for (__u32 a = 0; a < AEGIS_ACCESS_MAX && action == AEGIS_ACTION_ALLOW; a++) {
		if (!any_access && a != AEGIS_ACCESS_WRITE)
			continue;
		access = a;
		action = decide_dentry(addr_of(d), dev, a, &rule);
		/* The object itself was checked; moving it is not an access. */
		if (action == AEGIS_ACTION_UNRESOLVED)
			action = AEGIS_ACTION_ALLOW;
	}
	struct event *e = report(hook, action, access, rule);
	if (e) {
		fill_file(e, NULL, d, dev, key.ino, false);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(action);
}

SEC("lsm/inode_rename")
int BPF_PROG(aegis_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir, struct dentry *new_dentry)
{
	int ret = guard_object(old_dentry, AEGIS_HOOK_RENAME, true);
	if (ret == 0)
		ret = guard_object(new_dentry, AEGIS_HOOK_RENAME, false);
	return ret;
}

SEC("lsm/inode_link")
int BPF_PROG(aegis_inode_link, struct dentry *old_dentry, struct inode *dir, struct dentry *new_dentry)
{
	return guard_object(old_dentry, AEGIS_HOOK_LINK, true);
}

SEC("lsm/inode_unlink")
int BPF_PROG(aegis_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	return guard_object(dentry, AEGIS_HOOK_UNLINK, false);
}

SEC("lsm/inode_rmdir")
int BPF_PROG(aegis_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	return guard_object(dentry, AEGIS_HOOK_UNLINK, false);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(aegis_ptrace_access_check, struct task_struct *child, unsigned int mode)
{
	/* Only attaching is ptrace: PTRACE_MODE_READ checks guard reading
	 * /proc/PID/exe, fd, environ and the like, which journald, ps and
	 * lsof need; denying them would break the host, not stop tracing. */
	if (!(mode & AEGIS_PTRACE_MODE_ATTACH))
		return 0;
	if (guard_ptrace(child, mode) == AEGIS_ACTION_DENY)
		return verdict(AEGIS_ACTION_DENY);
	return verdict(decide_protect(AEGIS_PROTECT_PTRACE));
}

SEC("lsm/kernel_read_file")
int BPF_PROG(aegis_kernel_read_file, struct file *file, int id, bool contents)
{
	if (id != AEGIS_READING_MODULE)
		return 0;
	return verdict(decide_protect(AEGIS_PROTECT_MODULE_LOAD));
}

SEC("lsm/kernel_load_data")
int BPF_PROG(aegis_kernel_load_data, int id, bool contents)
{
	if (id != AEGIS_LOADING_MODULE)
		return 0;
	return verdict(decide_protect(AEGIS_PROTECT_MODULE_LOAD));
}

SEC("lsm/kernel_module_request")
int BPF_PROG(aegis_kernel_module_request, char *kmod_name)
{
	return verdict(decide_protect(AEGIS_PROTECT_MODULE_LOAD));
}

/* read_sockaddr fills q from the sockaddr at addr (kernel memory) of len
 * bytes. It returns false for anything but an IPv4 or IPv6 address long
 * enough for the protocols to accept it: those calls fail without our
 * help (EINVAL, EAFNOSUPPORT) or are no destination (AF_UNSPEC). */
static __always_inline bool read_sockaddr(void *addr, int len, struct net_query *q)
{
	__u16 family = 0;
	if (!addr || len < 2 || bpf_probe_read_kernel(&family, sizeof(family), addr) < 0)
		return false;
	__be16 port = 0;
	if (family == AF_INET && len >= 16) {
		if (bpf_probe_read_kernel(&port, sizeof(port), addr + 2) < 0 ||
		    bpf_probe_read_kernel(q->addr, 4, addr + 4) < 0)
			return false;
	} else if (family == AF_INET6 && len >= 24) {
		if (bpf_probe_read_kernel(&port, sizeof(port), addr + 2) < 0 ||
		    bpf_probe_read_kernel(q->addr, 16, addr + 8) < 0)
			return false;
	} else {
		return false;
	}
	q->family = family;
	q->port = bpf_ntohs(port);
	return true;
}

/* sock_protocol returns the IP protocol of an IPv4 or IPv6 socket, 0 for
 * other sockets. MPTCP is decided as TCP: its subflows are TCP. */
static __always_inline __u32 sock_protocol(struct socket *sock)
{
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u32 proto = BPF_CORE_READ(sk, sk_protocol);
	return proto == IPPROTO_MPTCP ? IPPROTO_TCP : proto;
}

/* check_dest decides a connect or send from sock to the sockaddr at addr
 * and reports it with the address as the process gave it. */
static __always_inline int check_dest(struct socket *sock, void *addr, int len, __u32 hook)
{
	struct net_query q = {};
	__u32 proto = sock_protocol(sock);
	if (proto == 0 || !read_sockaddr(addr, len, &q))
		return 0;
	q.protocol = proto;
	__u32 family = q.family;
	__u8 given[16];
	__builtin_memcpy(given, q.addr, sizeof(given));
	net_query_unmap(&q);
	__u32 rule;
	__u32 action = decide_net(&q, &rule);
	struct event *e = report(hook, action, 0, rule);
	if (e) {
		e->family = family;
		e->port = q.port;
		e->protocol = proto;
		__builtin_memcpy(e->addr, given, sizeof(given));
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(action);
}

SEC("lsm/socket_connect")
int BPF_PROG(aegis_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
	return check_dest(sock, (void *)address, addrlen, AEGIS_HOOK_CONNECT);
}

/* An unconnected datagram (or a TCP Fast Open sendto) names its
 * destination in msg_name, a kernel copy of the caller's address. */
SEC("lsm/socket_sendmsg")
int BPF_PROG(aegis_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size)
{
	void *name = BPF_CORE_READ(msg, msg_name);
	if (!name)
		return 0;
	return check_dest(sock, name, BPF_CORE_READ(msg, msg_namelen), AEGIS_HOOK_SENDMSG);
}

SEC("lsm/task_kill")
int BPF_PROG(aegis_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred)
{
	return verdict(guard_signal(p, sig, true));
}

/* SIGIO (or the F_SETSIG signal) sent to a file's owner: the agent never
 * asks for it, so it is refused from everyone but the agent. */
SEC("lsm/file_send_sigiotask")
int BPF_PROG(aegis_file_send_sigiotask, struct task_struct *tsk, struct fown_struct *fown, int sig)
{
	return verdict(guard_signal(tsk, sig ? sig : AEGIS_SIGIO, false));
}

SEC("lsm/bpf_map")
int BPF_PROG(aegis_bpf_map, struct bpf_map *map, fmode_t fmode)
{
	return verdict(guard_object_id(AEGIS_OBJ_MAP, BPF_CORE_READ(map, id), 0));
}

/* Links have no object hook: a link descriptor by id is refused here; one
 * from a pin needs the pin, and an LSM link has no detach operation. */
SEC("lsm/bpf")
int BPF_PROG(aegis_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
	if (cmd != BPF_LINK_GET_FD_BY_ID)
		return 0;
	__u32 id = BPF_CORE_READ(attr, link_id);
	return verdict(guard_object_id(AEGIS_OBJ_LINK, id, cmd));
}

SEC("lsm/sb_umount")
int BPF_PROG(aegis_sb_umount, struct vfsmount *mnt, int flags)
{
	return verdict(guard_umount(mnt));
}
