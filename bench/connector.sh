#!/usr/bin/env bash
# Suite connector benchmark: QoS 1 telemetry local -> cloud through our
# connector next to a Mosquitto bridge between the same brokers (the
# ceiling), measured in the same run; then the connector's idle RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
go build -trimpath -ldflags '-s -w' -o "$out/kanto" ./services/cmd/kanto
KANTO_BIN="$out/kanto" go test -run '^$' -bench TelemetryQoS1 -benchtime 1x -count "${COUNT:-3}" ./services/connector | tee "$out/bench.txt"
awk '
  /Benchmark/ {
    split($1, p, "/"); mode=p[2]; path=p[3]; sub(/-[0-9]+$/, "", path)
    for (i = 2; i <= NF; i++) { if ($(i+1) == "msgs/s") r[mode,path] += $i; if ($(i+1) == "p50-ms") p50[mode,path] += $i; if ($(i+1) == "p99-ms") p99[mode,path] += $i }
    n[mode,path]++
  }
  END {
    for (m in modes) {}
    split("max paced1k", ms, " ")
    for (k = 1; k <= 2; k++) { m = ms[k]
      c = "connector"; b = "bridge"
      printf "%-8s connector %8.0f msgs/s p50 %7.2f ms p99 %7.2f ms | bridge %8.0f msgs/s p50 %7.2f ms p99 %7.2f ms | throughput ratio %.2f\n", m,
        r[m,c]/n[m,c], p50[m,c]/n[m,c], p99[m,c]/n[m,c], r[m,b]/n[m,b], p50[m,b]/n[m,b], p99[m,b]/n[m,b], (r[m,c]/n[m,c])/(r[m,b]/n[m,b])
    }
  }' "$out/bench.txt"

# Idle RSS: a connector linked to a local broker and a (plain) cloud broker.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lp=$(port); hp=$(port)
for p in $lp $hp; do
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$p" > "$out/m$p.conf"
  [ "$(id -u)" = 0 ] && echo "user root" >> "$out/m$p.conf"
  mosquitto -c "$out/m$p.conf" >/dev/null 2>&1 &
done
sleep 0.5
cat > "$out/sc.json" <<JSON
{"address":"tcp://127.0.0.1:$hp","deviceId":"ns:gw","tenantId":"T","localAddress":"tcp://127.0.0.1:$lp",
 "provisioningFile":"$out/prov.json","bufferFile":"$out/buf.db","logFile":"$out/sc.log"}
JSON
"$out/kanto" suite-connector -configFile "$out/sc.json" &
pid=$!
sleep 5
rss=$(awk '/^Rss:/ {print $2}' /proc/$pid/smaps_rollup)
anon=$(awk '/^Anonymous:/ {print $2}' /proc/$pid/smaps_rollup)
echo "suite-connector idle RSS: $((rss / 1024)) MiB, of which $((anon / 1024)) MiB private (anonymous);" \
  "the rest are clean pages of the multi-call binary, shared by every service started from it"
