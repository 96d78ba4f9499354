#!/usr/bin/env bash
# Run every libFuzzer target of a fuzz build for SECONDS each, starting from its
# seed corpus (copied, so the committed seeds stay as they are).
#   scripts/fuzz.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bdir=${1:-build-fuzz} secs=${2:-20}
list="$bdir/fuzzers.txt"
[ -f "$list" ] || { echo "fuzz.sh: $list missing: build the 'fuzz' preset first" >&2; exit 1; }
n=0 failed=0
while IFS='|' read -r name corpus; do
  [ -n "$name" ] || continue
  bin=$(find "$bdir" -type f -name "$name" -perm -u+x | head -1)
  [ -x "$bin" ] || { echo "fuzz.sh: $name not built" >&2; failed=$((failed + 1)); continue; }
  work=$(mktemp -d "$bdir/fuzz-$name.XXXXXX")
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $name for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work" \
       > "$bdir/fuzz-$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $bdir/fuzz-$name.log" >&2
    tail -40 "$bdir/fuzz-$name.log" >&2
    failed=$((failed + 1))
  fi
  grep -E 'stat::number_of_executed_units' "$bdir/fuzz-$name.log" || true
  rm -rf "$work"
  n=$((n + 1))
done < "$list"
echo "fuzz: $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
