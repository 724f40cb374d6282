#!/usr/bin/env bash
# Boot time of the Kanto firmware image under QEMU TCG (OVMF + GRUB + kernel +
# init + services) next to a bare kernel+init boot (the same kernel, booted
# directly, whose init only prints a line and powers off), measured in the
# same run, and their ratio: to the init's services-up event, and to
# "connected" (the device's suite-connector has connected to the hub: a
# Mosquitto on the host's loopback, reached as 10.0.2.2 through QEMU user
# networking, with an identity written into the image by `kanto image
# provision`). Also the image's size and its build time, cold (empty
# cache) and cached. Env: KANTO (binary, default ./bin/kanto), RUNS (boots
# of each kind, default 2), COLD_GO=1 (the cold build also starts from an
# empty Go build cache: minutes of CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
K=${KANTO:-./bin/kanto}
RUNS=${RUNS:-2}
[ -x "$K" ] || make -s build
work=$(mktemp -d)
hub=""
trap '[ -n "$hub" ] && kill "$hub" 2>/dev/null; rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "bench/boot: building the image (cold: empty cache) ..."
if [ "${COLD_GO:-0}" = 1 ]; then export GOCACHE="$work/gocache"; fi
t0=$(now); "$K" image build -q --no-bundle --out "$work/img" --cache "$work/cache" >/dev/null; t1=$(now)
"$K" image build -q --no-bundle --out "$work/img" --cache "$work/cache" >/dev/null; t2=$(now)
cold=$(secs "$t0" "$t1"); cached=$(secs "$t1" "$t2")
kernel=$(sed -n 's/^ *"Kernel": "\(.*\)",$/\1/p' "$work/img/build.json")
"$K" image bare-initramfs "$work/bare.cpio"
size() { du -m --apparent-size "$1" | cut -f1; }
used() { du -m "$1" | cut -f1; }
disk_mib=$(size "$work/img/disk.img"); disk_used=$(used "$work/img/disk.img")

# The hub: a plain Mosquitto on a free loopback port (anonymous, so the
# provisioned password is accepted as is).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$work/hub.conf"
mosquitto -c "$work/hub.conf" >"$work/hub.log" 2>&1 & hub=$!
"$K" image provision -serial BENCH-0001 -address "tcp://10.0.2.2:$port" "$work/img/disk.img" >/dev/null

bare_sum=0; up_sum=0; conn_sum=0
for i in $(seq "$RUNS"); do
  b=$("$K" image qemu -no-net -until 'BARE-UP' -kernel "$kernel" -initrd "$work/bare.cpio" | awk '{print $1}')
  out=$("$K" image qemu -fresh -state "$work/run.img" -timeline -until 'msg="hub connected"' -timeout 180s "$work/img/disk.img")
  u=$(echo "$out" | awk '/KANTO-EVENT services-up/ { sub("s$", "", $1); print $1; exit }')
  c=$(echo "$out" | tail -1 | awk '{print $1}')
  echo "  run $i: bare kernel+init ${b}s, image to services up ${u}s, to connected ${c}s"
  bare_sum=$(awk -v s="$bare_sum" -v x="$b" 'BEGIN { print s + x }')
  up_sum=$(awk -v s="$up_sum" -v x="$u" 'BEGIN { print s + x }')
  conn_sum=$(awk -v s="$conn_sum" -v x="$c" 'BEGIN { print s + x }')
done
mean() { awk -v s="$1" -v n="$RUNS" 'BEGIN { printf "%.2f", s / n }'; }
bare=$(mean "$bare_sum"); up=$(mean "$up_sum"); conn=$(mean "$conn_sum")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "boot (TCG, mean of $RUNS): bare kernel+init ${bare}s"
echo "  image to services up ${up}s   ratio $(ratio "$up" "$bare")x"
echo "  image to connected   ${conn}s   ratio $(ratio "$conn" "$bare")x"
echo "image: disk ${disk_mib} MiB (${disk_used} MiB allocated), rootfs $(size "$work/img/rootfs.ext4") MiB ($(used "$work/img/rootfs.ext4") MiB used)"
what="empty image cache"; [ "${COLD_GO:-0}" = 1 ] && what="empty image and Go caches"
echo "build: cold (${what}) ${cold}s   cached ${cached}s   ratio $(awk -v a="$cold" -v b="$cached" 'BEGIN { printf "%.1f", a / b }')x"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
