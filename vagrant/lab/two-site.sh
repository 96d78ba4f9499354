#!/bin/bash
# The two-site lab. Today: site-a and site-b (network namespaces) carry TCP
# through a tunnel-mode ESP AES-256-GCM pair of SAs, and site-a holds a LUKS2
# XTS-AES-256 volume. It grows with every feature (storcryptd, partnerships,
# KMIP-held keys).
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
echo "lab: replication link site-a <-> site-b through ESP"
bash "$src/tests/vm/smoke/esp_tunnel.sh"
echo "lab: encrypted volume on site-a"
bash "$src/tests/vm/smoke/luks_loop.sh"
