package bpf

import "golang.org/x/sys/unix"

// KernelDev converts a userspace st_dev into the kernel's internal dev_t
// encoding (MAJOR<<20 | MINOR) that super_block.s_dev holds.
func KernelDev(statDev uint64) uint32 {
	return uint32(unix.Major(statDev))<<20 | uint32(unix.Minor(statDev))
}

// InodeKeyOf returns the deny-map key of the inode that st describes.
func InodeKeyOf(st *unix.Stat_t) AegisInodeKey {
	return AegisInodeKey{Ino: st.Ino, Dev: KernelDev(st.Dev)}
}
