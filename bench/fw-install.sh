#!/usr/bin/env bash
# Streaming install of a MIB-MiB image (default 512) into a file-backed slot,
# against the floor measured in the same run: SHA-256 of the same bytes
# plus a sequential write of them (with fsync). Prints both ratios:
#   - Go benchmark (firmware/install BenchmarkStreamInstall): library install
#     vs the floor done in Go in the same process;
#   - CLI: `kanto fw install` (the real binary, through the OTA agent) vs
#     `openssl dgst -sha256` + `dd conv=fsync` of the same image,
# and the peak RSS of `kanto fw install` (goal < 32 MiB).
set -euo pipefail
MIB=${1:-${KANTO_BENCH_MIB:-512}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kanto-fw-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"

echo "== Go benchmark (${MIB} MiB)"
KANTO_BENCH_MIB=$MIB go test -run '^$' -bench BenchmarkStreamInstall -benchtime 3x ./firmware/install | grep -E '^Benchmark' | tee "$WORK/go.txt"
GO_RATIO=$(awk '{for(i=1;i<=NF;i++) if($i=="ratio") print $(i-1)}' "$WORK/go.txt")

echo "== CLI (${MIB} MiB)"
CGO_ENABLED=0 go build -o "$WORK/kanto" ./services/cmd/kanto
CGO_ENABLED=0 go test -c -o "$WORK/install.test" ./firmware/install
K="$WORK/kanto"
cd "$WORK"
head -c $((MIB << 20)) /dev/urandom > rootfs.img
"$K" bundle keygen --dir keys >/dev/null
"$K" bundle create --key keys/signing.key --cert keys/signing.crt --compatible bench --version 1 --image rootfs=rootfs.img -o b.kfw >/dev/null
truncate -s $(((MIB + 1) << 20)) slotA
cp rootfs.img slotB   # an allocated partition
cp rootfs.img floor
echo "kanto.slot=A" > cmdline
cat > slots.json <<JSON
{"compatible":"bench","bootloader":"grub","grubenv":"grubenv","stateDir":"state","cmdline":"cmdline",
 "slots":[{"name":"A","class":"rootfs","device":"slotA"},{"name":"B","class":"rootfs","device":"slotB"}]}
JSON
"$K" fw env --grubenv grubenv ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
sync

now() { date +%s.%N; }
best_floor=999999 best_install=999999 rss=0
for i in 1 2 3; do
  t0=$(now)
  openssl dgst -sha256 b.kfw >/dev/null   # the same bytes the installer hashes (page cache; SHA-NI like Go)
  dd if=rootfs.img of=floor bs=1M conv=notrunc,fsync status=none
  t1=$(now)
  rm -rf state
  "$K" fw env --grubenv grubenv ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
  t2=$(now)
  /usr/bin/time -f %M -o rss.txt "$K" fw install -q --log-level error --hooks /nonexistent \
    --slots slots.json --keyring keys/ca.crt b.kfw >/dev/null
  t3=$(now)
  f=$(echo "$t1 - $t0" | bc -l); n=$(echo "$t3 - $t2" | bc -l); r=$(cat rss.txt)
  printf 'run %d: floor %.2fs  install %.2fs  peak RSS %d KiB\n' "$i" "$f" "$n" "$r"
  (( $(echo "$f < $best_floor" | bc -l) )) && best_floor=$f
  (( $(echo "$n < $best_install" | bc -l) )) && best_install=$n
  (( r > rss )) && rss=$r
done
cmp -n $((MIB << 20)) slotB rootfs.img

# The installer alone (the test binary links only firmware/...), and the
# multi-call binary doing nothing, to tell the installer's memory from the
# start-up cost of every service linked into kanto.
rm -rf state
"$K" fw env --grubenv grubenv ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
KANTO_INSTALL_HELPER=1 KANTO_SLOTS=slots.json KANTO_KEYRING=keys/ca.crt KANTO_BUNDLE=b.kfw \
  /usr/bin/time -f %M -o rss-lib.txt ./install.test -test.run '^TestHelperInstall$' >/dev/null
/usr/bin/time -f %M -o rss-idle.txt "$K" version >/dev/null
cmp -n $((MIB << 20)) slotB rootfs.img

CLI_RATIO=$(echo "$best_install / $best_floor" | bc -l)
printf 'floor   %.0f MiB/s (openssl dgst -sha256 + dd conv=fsync)\n' "$(echo "$MIB / $best_floor" | bc -l)"
printf 'install %.0f MiB/s (kanto fw install)\n' "$(echo "$MIB / $best_install" | bc -l)"
printf 'ratio install/floor: Go benchmark %s, CLI %.3f\n' "$GO_RATIO" "$CLI_RATIO"
printf 'peak RSS: installer library %.1f MiB (goal < 32 MiB); kanto fw install %.1f MiB, of which kanto version alone %.1f MiB\n' \
  "$(echo "$(cat rss-lib.txt) / 1024" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$(echo "$(cat rss-idle.txt) / 1024" | bc -l)"
