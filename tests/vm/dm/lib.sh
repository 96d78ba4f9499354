# Shared helpers for the dm VM scenarios (sourced; runs as root in the guest).
set -euo pipefail
modprobe -a loop dm-mod dm-crypt xts >/dev/null 2>&1 || true
VOLCTL=${STORCRYPT_BUILD_DIR:?}/tests/vm/dm/storcrypt_volctl
[ -x "$VOLCTL" ] || { echo "FAIL: $VOLCTL not built (cmake --build build --target storcrypt_volctl)"; exit 1; }
W=/tmp/dm-$(basename "$0" .sh)
rm -rf "$W"
mkdir -p "$W/m1" "$W/m2" "$W/backup" /mnt
LOOPS=()

vc() { "$VOLCTL" --copies 2 --media "$W/m1" --media "$W/m2" --system-id node-a --journal "$W/journal" \
  --backup-dir "$W/backup" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# killed_at KIND:POINT volctl-args...: run volctl with the journal's test-only
# pause hook (STORCRYPT_PAUSE_AT), wait until it announces the point, kill it
# with SIGKILL from outside, and check it died of that signal.
killed_at() {
  local at=$1; shift
  rm -f "$W/paused"
  STORCRYPT_PAUSE_AT=$at STORCRYPT_PAUSE_FILE="$W/paused" "$VOLCTL" --copies 2 --media "$W/m1" --media "$W/m2" \
    --system-id node-a --journal "$W/journal" --backup-dir "$W/backup" "$@" 2> "$W/err" &
  local pid=$! rc=0
  for _ in $(seq 1 600); do
    [ -s "$W/paused" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$(cat "$W/paused" 2>/dev/null)" = "$at" ] || { cat "$W/err"; kill -9 "$pid" 2>/dev/null; fail "volctl $* did not pause at $at"; }
  kill -9 "$pid"
  wait "$pid" || rc=$?
  [ "$rc" = 137 ] || fail "volctl paused at $at ended with status $rc, not by SIGKILL"
}
step() { echo "== $*"; }
# newdisk NAME SIZE -> prints the loop device
newdisk() {
  truncate -s "${2:-48M}" "$W/$1.img"
  local d; d=$(losetup --find --show "$W/$1.img")
  LOOPS+=("$d")
  echo "$d"
}
# ak_file KEYFILE OUT: the raw 32-byte AK from a key file, for the independent reader (0600).
ak_file() { (umask 077; sed -n 's/^ak: //p' "$1" | xxd -r -p > "$2"); [ "$(stat -c %s "$2")" = 32 ] || fail "no AK in $1"; }
# write_data MAPPER MiB: random data at the start of the mapping, checksum in $W/data.sha
write_data() {
  head -c "$2M" /dev/urandom > "$W/data"
  dd if="$W/data" of="$1" bs=1M oflag=direct status=none
  sha256sum < "$W/data" | cut -d' ' -f1 > "$W/data.sha"
  rm -f "$W/data"
}
check_data() {
  local got; got=$(dd if="$1" bs=1M count="$2" iflag=direct status=none | sha256sum | cut -d' ' -f1)
  [ "$got" = "$(cat "$W/data.sha")" ] || fail "data on $1 differs from what was written"
}
must_fail() { if "$@"; then fail "expected failure: $*"; fi; }
cleanup() {
  set +e
  umount /mnt 2>/dev/null
  for m in $(dmsetup ls --target crypt 2>/dev/null | awk '{print $1}'); do cryptsetup close "$m" 2>/dev/null; done
  for d in "${LOOPS[@]}"; do losetup -d "$d" 2>/dev/null; done
  rm -rf "$W"  # the guest's /tmp is RAM: leave room for the next scenario
}
trap cleanup EXIT
