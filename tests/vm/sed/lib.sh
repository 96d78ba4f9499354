#!/bin/bash
# Shared by the SED scenarios: loads the test-only opal_test_dev module
# (/dev/opaltest0 speaks Opal through a user-space responder, /dev/opaltest1
# is a plain disk without Opal), creates a factory-new drive state and runs
# the responder. Power cycle = SIGKILL the responder and start it again.
#   sed_lib_init NAME    (before anything else)
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
SEDCTL=$build/tests/vm/sed/storcrypt_sedctl
RESPONDER=$src/tests/vm/sed/opal_responder.py
KO=$build/tests/vm/sed/opal_test_dev/opal_test_dev.ko
OPAL=/dev/opaltest0
PLAIN=/dev/opaltest1
RPID=""

fail() { echo "FAIL: $*"; [ -f "$W/trace" ] && { echo "--- responder trace (tail)"; tail -30 "$W/trace"; }; exit 1; }

sed_cleanup() {
  [ -n "$RPID" ] && kill -9 "$RPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rmmod opal_test_dev 2>/dev/null || true
  rm -rf "$W"
}

sed_lib_init() {  # name
  W=$(mktemp -d "/tmp/storcrypt-sed-$1.XXXXXX")
  trap sed_cleanup EXIT
  if [ ! -f "$KO" ]; then
    echo "opal_test_dev.ko is not built: install linux-headers-amd64 (scripts/setup.sh) and rebuild"
    [ -n "${STORCRYPT_REQUIRE_ALL:-}" ] && exit 1
    echo "SKIP"; exit 0
  fi
  insmod "$KO" ndisks=2 opal_mask=1 size_mb=32
  [ -b "$OPAL" ] && [ -b "$PLAIN" ] && [ -c "$OPAL-ctl" ] || fail "module loaded but its devices are missing"
  python3 "$RESPONDER" --state "$W/drive.json" --factory --psid "PSID0123456789ABCDEF0123456789AB"
  PSID=PSID0123456789ABCDEF0123456789AB
  start_responder
}

start_responder() {  # power on
  rm -f "$W/ready"
  python3 "$RESPONDER" --ctl "$OPAL-ctl" --state "$W/drive.json" --trace "$W/trace" --ready "$W/ready" \
    >> "$W/responder.log" 2>&1 &
  RPID=$!
  for _ in $(seq 1 300); do [ -s "$W/ready" ] && return 0; sleep 0.1; done
  cat "$W/responder.log"
  fail "the responder did not start"
}

power_cycle() {  # the drive loses power: the responder dies, then comes back
  kill -9 "$RPID"
  wait "$RPID" 2>/dev/null || true
  RPID=""
  echo "POWER_CYCLE" >> "$W/trace"
  start_responder
}

can_read() { dd if="$OPAL" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null; }

# Every unlock (LOCK_UNLOCK whose Set unlocked the global range) is followed by
# an IOC_OPAL_SAVE before the next state-changing ioctl.
check_save_after_unlocks() {  # prints the number of unlocks checked
  python3 - "$W/trace" <<'PY'
import sys
lines = [l.strip() for l in open(sys.argv[1])]
cur, unlocked, pending, checked = None, False, False, 0
for l in lines:
    if l.startswith("IOCTL "):
        op = l.split()[1]
        if op == "GET_STATUS":
            continue
        if pending and op != "SAVE":
            sys.exit("an unlock was not followed by IOC_OPAL_SAVE (next: %s)" % op)
        if op == "SAVE":
            pending = False
        cur = op
    elif l.startswith("RANGE 0 ") and cur == "LOCK_UNLOCK" and "rl=0 wl=0" in l:
        pending, checked = True, checked + 1
if pending:
    sys.exit("the last unlock was not followed by IOC_OPAL_SAVE")
print(checked)
PY
}

# The first MiB of the drive equals FILE (dd with direct I/O: no page cache).
same_data() {  # FILE
  dd if="$OPAL" of="$W/readback" bs=1M count=1 iflag=direct status=none 2>/dev/null || return 1
  cmp -s "$W/readback" "$1"
}
