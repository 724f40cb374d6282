#!/usr/bin/env bash
# Container create+start latency through the container-management gRPC API
# next to `ctr run -d` of the same image on the same containerd (the floor),
# and the daemon's idle RSS with 0 and 10 running containers.
# Needs root, containerd, runc, the CNI plugins and busybox-static; it starts
# its own containerd and daemon in a temp dir and cleans up after itself.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "containers bench: needs root, skipped"; exit 0; fi
for p in containerd runc ctr; do command -v $p >/dev/null || { echo "containers bench: $p missing, skipped"; exit 0; }; done
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-30}
dir=$(mktemp -d /tmp/kcmbench.XXXXXX)
cd "$root"
go build -o "$dir/kanto" ./services/cmd/kanto 2>/dev/null || go build -o "$dir/kanto" ./services/containers/cmtest/kanto
go build -o "$dir/cmbench" ./services/containers/cmtest/cmbench
go run ./services/containers/cmtest/mkimage "$dir/bb.tar" docker.io/library/kcm-bench:1 >/dev/null

mkdir -p "$dir/ctrd"
cat > "$dir/ctrd/config.toml" <<EOT
version = 2
root = "$dir/ctrd/root"
state = "$dir/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/ctrd/c.sock"
[ttrpc]
  address = "$dir/ctrd/c.sock.ttrpc"
EOT
containerd --config "$dir/ctrd/config.toml" --log-level error >"$dir/ctrd/log" 2>&1 &
ctrd_pid=$!
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  for ns in kanto-cm-bench kanto-cm-benchd; do
    for t in $(ctr --address "$dir/ctrd/c.sock" -n $ns task ls -q 2>/dev/null); do
      ctr --address "$dir/ctrd/c.sock" -n $ns task kill -s SIGKILL "$t" 2>/dev/null || true
    done
  done
  sleep 0.5
  kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null || true
  grep "$dir" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del kcmbench0 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$dir/ctrd/c.sock" ] && break; sleep 0.1; done
ctr --address "$dir/ctrd/c.sock" -n kanto-cm-bench images import "$dir/bb.tar" >/dev/null

"$dir/kanto" container-management --log-file "$dir/d/daemon.log" --log-level WARN \
  --cm-home-dir "$dir/d/home" --cm-exec-root-dir "$dir/d/run" \
  --ccl-ap "$dir/ctrd/c.sock" --ccl-default-ns kanto-cm-benchd \
  --ccl-home-dir "$dir/d/home" --net-home-dir "$dir/d/home" --net-exec-root-dir "$dir/d/run" \
  --net-br-name kcmbench0 --net-br-fcidr4 10.215.0.0/24 --grpc-serv-ap "$dir/d/cm.sock" \
  --things-enable=false --deployment-enable=false &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$dir/d/cm.sock" ] && break; sleep 0.1; done
"$dir/kanto" kanto-cm --host "$dir/d/cm.sock" import "$dir/bb.tar" >/dev/null
echo "== containers: create+start vs ctr run (N=$N) =="
"$dir/cmbench" -socket "$dir/d/cm.sock" -containerd "$dir/ctrd/c.sock" -image docker.io/library/kcm-bench:1 -n "$N" -pid "$daemon_pid"
