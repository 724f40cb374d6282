#!/usr/bin/env bash
# The stack's main job on this machine (see README), run through `make demo`:
# builds the firmware images (cached), boots the device in QEMU and updates
# it from the cloud through the update manager, printing a timeline.
# `scripts/demo.sh -connectivity` (make demo-connectivity) runs the
# connector demo on loopback instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/kanto ] || CGO_ENABLED=0 go build -trimpath -o bin/kanto ./services/cmd/kanto
go build -o bin/kanto-demo ./services/cmd/kanto-demo
exec bin/kanto-demo -kanto bin/kanto "$@"
