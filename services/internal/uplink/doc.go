// Package uplink holds what the cloud-facing services besides the suite
// connector share (local digital twins, AWS connector): the retained
// connection status with upstream's causes, upstream's hub backoff and its
// environment overrides, and the zero-loss path towards the cloud: an
// Intake that acknowledges a local message to the broker only once it is
// fsynced to the disk buffer (package buffer), and a Sender that forwards
// the buffer to the cloud with a window of in-flight messages, removes
// delivered ones in batches, and sets aside a message the cloud keeps
// refusing.
//
// The pieces follow services/connector, which keeps its own copies so its
// behaviour does not change with this package.
package uplink
