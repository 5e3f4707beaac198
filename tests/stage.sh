#!/usr/bin/env bash
# stage.sh NAME CMD...: run one stage of `make test`, print its duration, and
# append it to $STAGE_LOG so the summary can list every stage.
set -uo pipefail
name=$1
shift
start=$(date +%s.%N)
echo "==> $name"
"$@"
rc=$?
end=$(date +%s.%N)
secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
status=ok
[ $rc -eq 0 ] || status="FAILED (exit $rc)"
line=$(printf '%-16s %8ss  %s' "$name" "$secs" "$status")
echo "<== $line"
[ -n "${STAGE_LOG:-}" ] && echo "$line" >>"$STAGE_LOG"
exit $rc
