#!/usr/bin/env bash
# Time to apply a desired state of 10 containers through the update manager
# (message → final feedback), next to the same creates and starts done
# directly through the container-management gRPC API, in the same run
# against the same daemon and containerd. Needs root, containerd, runc and
# the CNI plugins (see scripts/deps.sh). Prints both times and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
out=$(go test -run '^$' -bench '^BenchmarkApplyTenContainers$' -benchtime "${ROUNDS}x" -count 1 ./services/containers/updateagent/ 2>&1) || { echo "$out"; exit 1; }
line=$(grep '^BenchmarkApplyTenContainers' <<<"$out") || { echo "$out"; exit 1; }
campaign=$(awk '{for(i=1;i<=NF;i++) if($i=="campaign-ms/op") print $(i-1)}' <<<"$line")
direct=$(awk '{for(i=1;i<=NF;i++) if($i=="direct-ms/op") print $(i-1)}' <<<"$line")
ratio=$(awk '{for(i=1;i<=NF;i++) if($i=="ratio") print $(i-1)}' <<<"$line")
echo "10 containers, ${ROUNDS} rounds"
echo "  desired state via update-manager: ${campaign} ms (message to final feedback)"
echo "  direct container API calls:       ${direct} ms (10 x create + start)"
echo "  ratio campaign/direct:            ${ratio}"
