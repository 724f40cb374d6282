#!/usr/bin/env bash
# Runs every FuzzXxx target in the module for a short time ($1, default 5s).
set -euo pipefail
t=${1:-5s}
mapfile -t pkgs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
for d in "${pkgs[@]}"; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$d"/*_test.go | sed 's/func //'); do
    echo "fuzz: $d $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$d"
  done
done
