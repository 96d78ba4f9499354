#!/bin/bash
# Run the dm benchmarks in the kernel VM (TCG: absolute numbers are slow,
# the printed ratios are what matters). Usage: tests/bench/dm/run_vm.sh [build-dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../../build}
cmake --build "$build" --target storcrypt_volctl
exec "$here/../../vm/harness/vmrun.sh" --build-dir "$build" --name dm_bench --timeout 3000 --memory 3072 \
  "$here/vm_unlock.sh" "$here/vm_open50.sh" "$here/vm_throughput.sh"
