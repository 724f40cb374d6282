// Package uplink holds what the cloud-facing services share (suite
// connector, local digital twins, AWS connector): the retained
// connection status with upstream's causes, upstream's hub backoff and its
// environment overrides, and the zero-loss path towards the cloud: an
// Intake that acknowledges a local message to the broker only once it is
// fsynced to the disk buffer (package buffer), and a Sender that forwards
// the buffer to the cloud with a window of in-flight messages, removes
// delivered ones in batches, and sets aside a message the cloud keeps
// refusing.
package uplink
