#!/usr/bin/env bash
# Boot time of the Kanto firmware image under QEMU TCG (OVMF + GRUB + kernel +
# init + services) next to a bare kernel+init boot (the same kernel, booted
# directly, whose init only prints a line and powers off), measured in the
# same run, and their ratio. Also the image's size and its build time, cold
# (empty cache) and cached. Env: KANTO (binary, default ./bin/kanto),
# RUNS (boots of each kind, default 2), MARKER (what "up" means, default the
# init's services-up event), COLD_GO=1 (the cold build also starts from an
# empty Go build cache: minutes of CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
K=${KANTO:-./bin/kanto}
RUNS=${RUNS:-2}
MARKER=${MARKER:-KANTO-EVENT services-up}
[ -x "$K" ] || make -s build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "bench/boot: building the image (cold: empty cache) ..."
if [ "${COLD_GO:-0}" = 1 ]; then export GOCACHE="$work/gocache"; fi
t0=$(now); "$K" image build -q --no-bundle --out "$work/img" --cache "$work/cache" >/dev/null; t1=$(now)
"$K" image build -q --no-bundle --out "$work/img" --cache "$work/cache" >/dev/null; t2=$(now)
cold=$(secs "$t0" "$t1"); cached=$(secs "$t1" "$t2")
kernel=$(sed -n 's/^ *"Kernel": "\(.*\)",$/\1/p' "$work/img/build.json")
"$K" image bare-initramfs "$work/bare.cpio"

bare_sum=0; full_sum=0
for i in $(seq "$RUNS"); do
  b=$("$K" image qemu -no-net -until 'BARE-UP' -kernel "$kernel" -initrd "$work/bare.cpio" | awk '{print $1}')
  f=$("$K" image qemu -fresh -state "$work/run.img" -until "$MARKER" -timeout 120s "$work/img/disk.img" | awk '{print $1}')
  echo "  run $i: bare kernel+init ${b}s, image to '$MARKER' ${f}s"
  bare_sum=$(awk -v s="$bare_sum" -v x="$b" 'BEGIN { print s + x }')
  full_sum=$(awk -v s="$full_sum" -v x="$f" 'BEGIN { print s + x }')
done
bare=$(awk -v s="$bare_sum" -v n="$RUNS" 'BEGIN { printf "%.2f", s / n }')
full=$(awk -v s="$full_sum" -v n="$RUNS" 'BEGIN { printf "%.2f", s / n }')
ratio=$(awk -v a="$full" -v b="$bare" 'BEGIN { printf "%.2f", a / b }')

size() { du -m --apparent-size "$1" | cut -f1; }
used() { du -m "$1" | cut -f1; }
echo
echo "boot (TCG, mean of $RUNS):  bare kernel+init ${bare}s   image to services up ${full}s   ratio ${ratio}x"
echo "image: disk $(size "$work/img/disk.img") MiB ($(used "$work/img/disk.img") MiB allocated), rootfs $(size "$work/img/rootfs.ext4") MiB ($(used "$work/img/rootfs.ext4") MiB used)"
what="empty image cache"; [ "${COLD_GO:-0}" = 1 ] && what="empty image and Go caches"
echo "build: cold (${what}) ${cold}s   cached ${cached}s   ratio $(awk -v a="$cold" -v b="$cached" 'BEGIN { printf "%.1f", a / b }')x"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
