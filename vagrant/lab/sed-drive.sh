#!/bin/bash
# The lab's self-encrypting drive: a test-bed TCG Opal drive (the
# opal_test_dev kernel module of tests/vm/sed, whose Opal traffic, built by
# the kernel's sed-opal, is answered by a user-space responder) under one
# storcryptd keyed from two key media:
#   ear enable -> the drive is owned and locking is on;
#   drive lock -> reads fail; the daemon restarts and unlocks it with the key
#   from the media; the data reads back.
# Needs the module built for the VM kernel (linux-headers-amd64); runs in the
# kernel VM (scripts/lab).
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/vm/sed/lib.sh"
sed_lib_init lab
D=$build/controller/storcryptd
C=$build/controller/storcrypt
PID=""
lab_cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; sed_cleanup; }
trap lab_cleanup EXIT
mkdir -p "$W/media1" "$W/media2"
cat > "$W/storcrypt.conf" <<EOF2
state_directory = $W/state
socket_path = $W/sock
EOF2
cat > "$W/at-rest.json" <<EOF2
{"system_id": "lab-sed", "media_dirs": ["$W/media1", "$W/media2"], "desired_copies": 2,
 "sed_devices": ["$OPAL", "$PLAIN"]}
EOF2
start() {
  rm -f "$W/sock"
  "$D" --config "$W/storcrypt.conf" --foreground >> "$W/daemon.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do [ -S "$W/sock" ] && return 0; sleep 0.1; done
  cat "$W/daemon.log"; exit 1
}
sc() { echo "storcrypt $*"; "$C" --socket "$W/sock" "$@"; }
reads() { dd if="$OPAL" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null; }

start
sc drive list
sc ear enable
head -c 1M /dev/urandom > "$W/data"
dd if="$W/data" of="$OPAL" bs=1M oflag=direct status=none
sc drive lock "$OPAL"
if reads; then echo "FAIL: the locked drive is readable"; exit 1; fi
echo "reading $OPAL while locked: I/O error (as expected)"
sc drive show "$OPAL"
echo "restarting storcryptd: it unlocks the drive with the key from the media"
kill "$PID"; wait "$PID" || true
start
for _ in $(seq 1 100); do reads && break; sleep 0.1; done
sc drive show "$OPAL" | grep -q '^state: *unlocked' || { echo "FAIL: the drive is not unlocked"; exit 1; }
dd if="$OPAL" of="$W/back" bs=1M count=1 iflag=direct status=none
cmp "$W/back" "$W/data" || { echo "FAIL: data differs after the unlock"; exit 1; }
echo "data read back identical after the daemon's unlock"
sc ear status
