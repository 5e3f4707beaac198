// Package loop attaches a regular file to a loop block device, read-only,
// through the kernel's ioctl interface (LOOP_CONFIGURE, with a fallback to
// LOOP_SET_FD on kernels before 5.8), so dm-verity can sit on top of a layer
// file. It needs root and the loop driver.
package loop
