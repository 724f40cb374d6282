#!/usr/bin/env bash
# Idle RSS of local-digital-twins and aws-connector, each linked to a local
# Mosquitto and to a cloud broker (plain for the twins; mutual TLS with a
# certificate made here for AWS), after IDLE seconds (default 5); the suite
# connector is measured the same way as the peer.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$out"' EXIT
go build -o "$out/kanto" ./services/cmd/kanto
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
broker() { # port [extra config]
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\n' "$1" "${2:-}" > "$out/m$1.conf"
  [ "$(id -u)" = 0 ] && echo "user root" >> "$out/m$1.conf"
  mosquitto -c "$out/m$1.conf" >/dev/null 2>&1 &
  pids+=($!)
}
lp=$(port); hp=$(port); ap=$(port)
# certificates: a CA, the broker, a device with CN test:device
openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key" 2>/dev/null
openssl req -x509 -new -key "$out/ca.key" -subj /CN=bench-ca -days 1 -out "$out/ca.crt" 2>/dev/null
for n in broker device; do
  cn=localhost; [ $n = device ] && cn=test:device
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/$n.key" 2>/dev/null
  openssl req -new -key "$out/$n.key" -subj "/CN=$cn" -out "$out/$n.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$out/$n.ext"
  openssl x509 -req -in "$out/$n.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -days 1 -extfile "$out/$n.ext" -out "$out/$n.crt" 2>/dev/null
done
broker "$lp"; broker "$hp"
broker "$ap" "cafile $out/ca.crt
certfile $out/broker.crt
keyfile $out/broker.key
require_certificate true"
sleep 0.5
common="\"localAddress\":\"tcp://127.0.0.1:$lp\",\"logFile\":\"\",\"logLevel\":\"ERROR\""
cat > "$out/sc.json" <<JSON
{"address":"tcp://127.0.0.1:$hp","deviceId":"ns:gw","tenantId":"T","provisioningFile":"$out/p.json","bufferFile":"$out/sc.db",$common}
JSON
cat > "$out/ldt.json" <<JSON
{"address":"tcp://127.0.0.1:$hp","deviceId":"ns:gw","tenantId":"T","provisioningFile":"$out/p.json","thingsDb":"$out/things.db","bufferFile":"$out/ldt.db",$common}
JSON
cat > "$out/aws.json" <<JSON
{"address":"tls://127.0.0.1:$ap","caCert":"$out/ca.crt","cert":"$out/device.crt","key":"$out/device.key","bufferFile":"$out/aws.db",$common}
JSON
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
for svc in suite-connector:sc local-digital-twins:ldt aws-connector:aws; do
  name=${svc%%:*}; cfg=${svc##*:}
  CLOUD_CLIENTID="cloud-$cfg" LOCAL_CLIENTID="connector-$cfg" "$out/kanto" "$name" -configFile "$out/$cfg.json" 2>"$out/$cfg.log" &
  pid=$!; pids+=($pid)
  sleep "${IDLE:-5}"
  if ! kill -0 "$pid" 2>/dev/null; then echo "$name exited:"; cat "$out/$cfg.log"; exit 1; fi
  eval "rss_$cfg=$(rss $pid)"
done
echo "idle RSS after ${IDLE:-5}s: suite-connector ${rss_sc} KiB (peer) | local-digital-twins ${rss_ldt} KiB (ratio $(awk -v a="$rss_ldt" -v b="$rss_sc" 'BEGIN{printf "%.2f", a/b}')) | aws-connector ${rss_aws} KiB (ratio $(awk -v a="$rss_aws" -v b="$rss_sc" 'BEGIN{printf "%.2f", a/b}'))"
