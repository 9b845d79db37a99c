#!/usr/bin/env bash
# CI check: the chart's copies of the CRD, the rules and the dashboard are
# byte-identical to their sources (the pairs are defined in hack/sync-chart.sh).
# Exit 1 listing each stale copy; fix with `make chart-sync`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
stale=0
while read -r src dst; do
  if [ ! -f "$dst" ]; then
    echo "missing chart copy: ${dst#"$repo/"} (of ${src#"$repo/"})" >&2
    stale=1
  elif ! cmp -s "$src" "$dst"; then
    echo "stale chart copy: ${dst#"$repo/"} differs from ${src#"$repo/"}:" >&2
    diff -u "$src" "$dst" | head -20 >&2 || true
    stale=1
  fi
done < <("$here/sync-chart.sh" --list)
if [ "$stale" -ne 0 ]; then
  echo "run 'make chart-sync' (hack/sync-chart.sh) and commit the copies" >&2
  exit 1
fi
echo "chart copies match their sources"
