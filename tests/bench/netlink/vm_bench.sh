#!/bin/bash
# Run the netlink benchmark inside the kernel VM (which has ESP), N from $BENCH_N (default 10000).
set -euo pipefail
modprobe -a esp4 xfrm_user 2>/dev/null || true
"${STORCRYPT_BUILD_DIR:-$PWD}/tests/bench/netlink/netlink_bench" "${BENCH_N:-10000}"
