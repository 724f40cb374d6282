// Package e2e holds the end-to-end tests of container management: the real
// kanto binary as daemon and CLI, a private containerd with runc, the CNI
// plugins and a docker-registry, all started by the tests. They need root;
// without it they skip (and fail under CI=true).
package e2e
