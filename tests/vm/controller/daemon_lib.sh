#!/bin/bash
# Shared by the at-rest daemon scenarios: one storcryptd with its own state
# directory, socket and two key media under a temporary directory, a 48 MiB
# loop device, and helpers to drive it through storcrypt.
#   daemon_lib_init NAME SYSTEM_ID VOLUME   (before anything else)
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
D=$build/controller/storcryptd
C=$build/controller/storcrypt
PID=""
LOOP=""

fail() { echo "FAIL: $*"; [ -f "$W/daemon.log" ] && { echo "--- daemon log"; tail -50 "$W/daemon.log"; }; exit 1; }
cleanup() {
  "$C" --socket "$W/sock" volume close "$VOL" >/dev/null 2>&1 || true
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  dmsetup remove "$VOL" >/dev/null 2>&1 || true
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
  rm -rf "$W"
}

daemon_lib_init() {  # name system-id volume
  W=$(mktemp -d "/tmp/storcrypt-$1.XXXXXX")
  VOL=$3
  trap cleanup EXIT
  cat > "$W/storcrypt.conf" <<EOF2
state_directory = $W/state
socket_path = $W/sock
log_level = info
EOF2
  cat > "$W/at-rest.json" <<EOF2
{"system_id": "$2", "media_dirs": ["$W/media1", "$W/media2"], "desired_copies": 2,
 "unlock_retry_seconds": 2}
EOF2
  mkdir -p "$W/media1" "$W/media2"
  modprobe -a loop dm-mod dm-crypt 2>/dev/null || true
  truncate -s 48M "$W/disk.img"
  LOOP=$(losetup --find --show "$W/disk.img")
}

start_daemon() {  # [KIND:POINT: pause there (the journal's test-only STORCRYPT_PAUSE_AT hook)]
  rm -f "$W/sock" "$W/paused"
  if [ -n "${1:-}" ]; then
    STORCRYPT_PAUSE_AT=$1 STORCRYPT_PAUSE_FILE="$W/paused" "$D" --config "$W/storcrypt.conf" --foreground \
      >> "$W/daemon.log" 2>&1 &
  else
    "$D" --config "$W/storcrypt.conf" --foreground >> "$W/daemon.log" 2>&1 &
  fi
  PID=$!
  for _ in $(seq 1 100); do [ -S "$W/sock" ] && return 0; sleep 0.1; done
  fail "storcryptd did not start"
}
# kill_paused KIND:POINT: wait until the daemon announces that it paused at
# the point, then kill it with SIGKILL from outside (as a crash would).
kill_paused() {
  for _ in $(seq 1 1200); do
    [ -s "$W/paused" ] && break
    kill -0 "$PID" 2>/dev/null || fail "storcryptd ended before pausing at $1"
    sleep 0.1
  done
  [ "$(cat "$W/paused" 2>/dev/null)" = "$1" ] || fail "storcryptd did not pause at $1 (paused: $(cat "$W/paused" 2>/dev/null))"
  kill -9 "$PID"
  local rc=0
  wait "$PID" || rc=$?
  PID=""
  [ "$rc" = 137 ] || fail "storcryptd paused at $1 ended with status $rc, not by SIGKILL"
  rm -f "$W/sock"
}
stop_daemon() {
  kill -TERM "$PID"
  wait "$PID" || true
  PID=""
  rm -f "$W/sock"
}
sc() { echo "+ storcrypt $*" >&2; "$C" --socket "$W/sock" "$@"; }
scj() { "$C" --socket "$W/sock" --json "$@"; }
