#!/bin/bash
# The lab's control plane: one storcryptd per site (own state directory and
# API socket), driven only through the storcrypt command.
#   - system doctor on each site (kernel capabilities, state, certificates);
#   - each site creates its internal root CA and endpoint certificate, exports
#     the root, and the partner trusts it for ipsec;
#   - site-a keeps an encrypted volume keyed from two key media: create,
#     open, write, close, reopen, show;
#   - events.
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
D=$build/controller/storcryptd
C=$build/controller/storcrypt
W=$(mktemp -d /tmp/storcrypt-lab.XXXXXX)
PIDS=()
LOOP=""
cleanup() {
  "$C" --socket "$W/a/sock" volume close labvol >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

start_site() {  # name
  local s=$1
  mkdir -p "$W/$s/state" "$W/$s/media1" "$W/$s/media2"
  cat > "$W/$s/storcrypt.conf" <<EOF
state_directory = $W/$s/state
socket_path = $W/$s/sock
log_level = info
EOF
  cat > "$W/$s/at-rest.json" <<EOF
{"system_id": "lab-$s", "media_dirs": ["$W/$s/media1", "$W/$s/media2"], "desired_copies": 2}
EOF
  "$D" --config "$W/$s/storcrypt.conf" --foreground > "$W/$s/daemon.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$W/$s/sock" ] && return 0; sleep 0.1; done
  echo "storcryptd for $s did not start:"; cat "$W/$s/daemon.log"; exit 1
}
sc() { local s=$1; shift; echo "[$s] storcrypt $*"; "$C" --socket "$W/$s/sock" "$@"; }

start_site a
start_site b
sc a system status
sc a system doctor || true   # doctor exits non-zero when something needs attention

for s in a b; do
  sc $s cert create --cn "site-$s.lab.example" --org "storcrypt lab" --ip "192.0.2.$([ $s = a ] && echo 1 || echo 2)"
  sc $s cert export-root --out "$W/$s-root.pem"
done
sc a truststore add "$W/b-root.pem" --use ipsec
sc b truststore add "$W/a-root.pem" --use ipsec
sc a truststore list
sc a cert show

modprobe -a loop dm-mod dm-crypt 2>/dev/null || true
truncate -s 48M "$W/a/disk.img"
LOOP=$(losetup --find --show "$W/a/disk.img")
sc a keymedia init "$W/a/media1"
sc a keymedia init "$W/a/media2"
sc a volume create "$LOOP" labvol --key-id lab-key
sc a volume open labvol
dd if=/dev/urandom of="$W/a/data" bs=1M count=4 status=none
dd if="$W/a/data" of=/dev/mapper/labvol bs=1M oflag=direct status=none
sc a volume close labvol
sc a volume open labvol
if ! cmp -n $((4 * 1024 * 1024)) "$W/a/data" /dev/mapper/labvol; then
  echo "FAIL: data read back from the reopened volume differs"; exit 1
fi
echo "[a] data read back identical after reopen"
sc a volume show labvol | grep '^state: *open' > /dev/null || { echo "FAIL: volume not reported open"; exit 1; }
sc a volume show labvol
sc a keymedia status
sc a event list
