#!/usr/bin/env bash
# Regenerates the Go code of the local API from the .proto files.
# Needs protoc (Debian protobuf-compiler), protoc-gen-go v1.35.2 and
# protoc-gen-go-grpc v1.3.0 (the versions matching go.mod's protobuf and grpc).
# OUT overrides the output directory (the freshness test uses a temp dir).
set -euo pipefail
cd "$(dirname "$0")"
out=${OUT:-.}
export PATH="$PATH:$(go env GOPATH)/bin"
cd ..
protos=$(find api -name '*.proto' | sort)
protoc -I . -I /usr/include \
  --go_out="$out" --go_opt=module=github.com/kantofw/kanto/services/containers \
  --go-grpc_out="$out" --go-grpc_opt=module=github.com/kantofw/kanto/services/containers \
  $protos
