#!/usr/bin/env bash
# Local digital twins: persisted twin updates per second and p99 latency
# (a property modify handled end to end in-process: parse, apply, one fsynced
# bbolt transaction, response and event) next to raw bbolt writes of the same
# records measured in the same run, and their ratio. (Idle RSS of the
# services: bench/idle-rss.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -run '^$' -bench PersistedUpdates -benchtime "${N:-2000}x" -count "${COUNT:-3}" ./services/twins | tee "$out/bench.txt"
awk '
  /Benchmark/ {
    split($1, p, "/"); k = p[2]; sub(/-[0-9]+$/, "", k)
    for (i = 2; i <= NF; i++) { if ($(i+1) == "updates/s") r[k] += $i; if ($(i+1) == "p99-ms") p99[k] += $i; if ($(i+1) == "p50-ms") p50[k] += $i }
    n[k]++
  }
  END {
    printf "twins  %8.0f updates/s p50 %6.2f ms p99 %6.2f ms | raw bbolt %8.0f writes/s p50 %6.2f ms p99 %6.2f ms | throughput ratio %.2f\n",
      r["twins"]/n["twins"], p50["twins"]/n["twins"], p99["twins"]/n["twins"], r["bbolt"]/n["bbolt"], p50["bbolt"]/n["bbolt"], p99["bbolt"]/n["bbolt"],
      (r["twins"]/n["twins"])/(r["bbolt"]/n["bbolt"])
  }' "$out/bench.txt"
