#!/usr/bin/env bash
# Check formatting (clang-format) and run clang-tidy over the project's sources.
#   scripts/lint.sh [--fix]   (--fix rewrites files with clang-format)
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.h' | grep -v '^tests/fuzz/.*/corpus/')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i $files
  exit 0
fi
rc=0
clang-format --dry-run --Werror $files || rc=1
[ -f build/compile_commands.json ] || cmake --preset default >/dev/null
clang-tidy -p build --quiet $(git ls-files '*.cpp' | grep -v '^tests/') 2>/dev/null | grep -E 'warning:|error:' && rc=1
exit $rc
