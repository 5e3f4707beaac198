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

char LICENSE[] SEC("license") = "GPL";

/* Make the ABI types visible in BTF for bpf2go -type. */
const struct event *unused_event __attribute__((unused));
const struct rule_counter *unused_counter __attribute__((unused));

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

/* check_file decides access to the object behind file (or dentry d when
 * file is not a trusted hook argument) and reports. */
static __always_inline int check_dentry(struct file *file, struct dentry *d, __u32 hook, __u32 access, bool with_path)
{
	struct walk w;
	__u32 rule;
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	__u32 action = decide_dentry(&w, d, dev, access, &rule);
	struct event *e = report(hook, action, access, rule);
	if (e) {
		fill_file(e, file, d, dev, BPF_CORE_READ(d, d_inode, i_ino), with_path);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(action);
}

SEC("lsm/file_open")
int BPF_PROG(aegis_file_open, struct file *file)
{
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	fmode_t mode = BPF_CORE_READ(file, f_mode);
	int ret = 0;

	if (mode & FMODE_WRITE)
		ret = check_dentry(file, d, AEGIS_HOOK_FILE_OPEN, AEGIS_ACCESS_WRITE, true);
	if (ret == 0 && (mode & FMODE_READ))
		ret = check_dentry(file, d, AEGIS_HOOK_FILE_OPEN, AEGIS_ACCESS_READ, true);
	return ret;
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
	struct walk w;
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
		action = decide_dentry(&w, d, dev, a, &rule);
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
