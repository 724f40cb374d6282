// Package api holds the .proto files of the local container-management API
// and the Go code generated from them (in the sub-packages). The proto
// packages, services, messages and field numbers are Eclipse Kanto's, so the
// upstream kanto-cm and other clients talk to our daemon unchanged.
//
// The generated files are committed; run go generate after editing a .proto.
package api

//go:generate ./generate.sh
