#!/usr/bin/env bash
# File upload throughput against each real server (HTTP test server,
# versitygw S3, azurite), next to that server's reference client sending the
# same 64 MiB file in the same run. Prints MB/s and kanto/reference ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
count=${COUNT:-3}
out=$(go test -run '^$' -bench '^BenchmarkUpload$' -benchtime "${BENCHTIME:-3x}" -count "$count" ./services/fileupload/ | tee /dev/stderr)
echo
echo "file upload throughput (median of $count runs, MB/s)"
med() { awk -v p="^BenchmarkUpload/$1/$2(-[0-9]+)?$" '$1 ~ p {for(i=1;i<=NF;i++) if($(i+1)=="MB/s") print $i}' <<<"$out" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { [[ -n "$1" && -n "$2" ]] && awk -v k="$1" -v r="$2" 'BEGIN{printf "%.2f", k/r}' || echo n/a; }
printf '%-8s %10s %10s %10s %8s %10s\n' server reference kanto kanto-md5 ratio ratio-md5
for s in http s3 azure; do
  r=$(med "$s" reference); k=$(med "$s" kanto); m=$(med "$s" kanto-md5)
  printf '%-8s %10s %10s %10s %8s %10s\n' "$s" "${r:--}" "${k:--}" "${m:--}" "$(ratio "$k" "$r")" "$(ratio "$m" "$r")"
done
exit 0
