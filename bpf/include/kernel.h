/* Minimal kernel types for CO-RE. Only the fields AegisBPF reads are declared;
 * preserve_access_index makes the loader relocate each access against the
 * running kernel's BTF, so layout differences between kernels do not matter.
 * Hook arguments are declared with the kernel's own struct names so the
 * verifier matches them against vmlinux BTF. */
#ifndef AEGIS_KERNEL_H
#define AEGIS_KERNEL_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;
typedef __u32 dev_t;
typedef unsigned int fmode_t;
typedef _Bool bool;
#define true 1
#define false 0

#define FMODE_READ  0x1
#define FMODE_WRITE 0x2
#define PROT_EXEC   0x4
#define VM_EXEC     0x00000004

struct super_block {
	dev_t s_dev;
} __attribute__((preserve_access_index));

struct hlist_node {
	struct hlist_node *next;
	struct hlist_node **pprev;
} __attribute__((preserve_access_index));

struct hlist_head {
	struct hlist_node *first;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	unsigned short i_mode;
	struct super_block *i_sb;
	struct hlist_head i_dentry; /* in an anonymous union in the kernel */
} __attribute__((preserve_access_index));

struct qstr {
	union {
		struct {
			u32 hash;
			u32 len;
		};
		u64 hash_len;
	};
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
	union {
		struct hlist_node d_alias;
	} d_u;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
	struct inode *f_inode;
	fmode_t f_mode;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
} __attribute__((preserve_access_index));

struct vm_area_struct {
	unsigned long vm_flags;
	struct file *vm_file;
} __attribute__((preserve_access_index));

struct kernfs_node {
	struct kernfs_node *parent;
	const char *name;
	u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct css_set *cgroups;
} __attribute__((preserve_access_index));

/* Networking. struct sock's family lives in its sock_common. */
#define AF_INET  2
#define AF_INET6 10
#define IPPROTO_TCP   6
#define IPPROTO_MPTCP 262

struct sock_common {
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct sockaddr;

struct msghdr {
	void *msg_name;
	int msg_namelen;
} __attribute__((preserve_access_index));

/* Self-protection. */
struct bpf_map {
	u32 id;
} __attribute__((preserve_access_index));

struct kernel_siginfo;
struct cred;
struct fown_struct;

#endif
