#!/usr/bin/env bash
# The stack's main job on this machine (see README): builds kanto and runs
# the demo, printing a timeline. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/kanto-demo ./services/cmd/kanto-demo
exec bin/kanto-demo -kanto bin/kanto "$@"
