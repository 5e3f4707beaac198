// Package wire is the protocol of the e2e control channel between the host
// driver (tests/e2e) and the guest agent (tests/e2e/guestagent), carried
// over a virtio-serial port.
//
// Each message is one JSON object on one line. The host sends Requests,
// the guest answers each with a Response carrying the same ID; byte fields
// travel as base64, so any output survives the trip. A request names the
// boot it is meant for, and the guest refuses a request for another boot:
// a command queued before a reset can never run after it.
package wire
