// Package guest is the guest side of the e2e control channel: it serves
// wire.Requests read from the virtio-serial port by running commands and
// reading and writing files, and answers each with a wire.Response.
//
// Requests are served concurrently, each in its own goroutine; responses
// are written whole, one at a time. A command runs in its own process
// group under /bin/sh -c; when its time limit passes, the whole group is
// killed. Processes a command leaves running in the background (a probe
// loop, say) survive it: start them with setsid and redirected output.
package guest
