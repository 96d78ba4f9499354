#!/bin/bash
# The sed library (storcrypt::sed, through sedctl) against the real 6.1
# kernel's sed-opal and the test-bed drive: the ioctls the product uses, the
# data path while locked and unlocked, wrong keys, Admin1 password change,
# power cycle and the kernel's resume replay of a saved unlock, SID revert, a
# non-Opal disk. Disable, secure erase, in-use and PSID revert are exercised
# through the daemon (daemon.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sed_lib_init kpath
K=$W/key; printf 'A%.0s' $(seq 32) > "$K"
N=$W/new; printf 'N%.0s' $(seq 32) > "$N"
X=$W/wrong; printf 'X%.0s' $(seq 32) > "$X"
sc() { echo "+ sedctl $*" >&2; "$SEDCTL" "$OPAL" "$@"; }
expect_fail() {  # NAME CMD...: the command fails and prints the error name
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected $name from: $*"; fi
  echo "$out"
  [[ $out == *"$name"* ]] || fail "expected error $name, got: $out"
}

echo "== a plain disk is not Opal"
expect_fail xSedNotOpal "$SEDCTL" "$PLAIN" status

echo "== factory drive"
sc status | tee "$W/st"
grep -q "locking_enabled=0 locked=0" "$W/st" || fail "factory drive has locking enabled"
head -c 1M /dev/urandom > "$W/data"
dd if="$W/data" of="$OPAL" bs=1M oflag=direct status=none

echo "== provision: own, activate, enable locking"
sc own --key-file "$K"
expect_fail xSedNotAuthorized sc own --key-file "$X"
sc activate --key-file "$K"
expect_fail xSedLockingActive sc activate --key-file "$K"
sc enable --key-file "$K"
sc status | grep -q "locking_enabled=1 locked=0" || fail "locking not enabled"

echo "== lock: data unreadable (I/O error)"
sc lock --key-file "$K"
sc status | grep -q "locked=1" || fail "status does not say locked"
if can_read; then fail "read succeeded on a locked drive"; fi
if dd if=/dev/zero of="$OPAL" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then fail "write succeeded while locked"; fi

echo "== wrong key: refused, still locked"
expect_fail xSedNotAuthorized sc unlock --key-file "$X"
if can_read; then fail "wrong key unlocked the drive"; fi

echo "== unlock + save: data intact"
sc unlock --key-file "$K"
sc save --key-file "$K"
same_data "$W/data" || fail "data changed across lock/unlock"

echo "== Admin1 password change"
sc setpw --key-file "$K" --new-key-file "$N"
expect_fail xSedNotAuthorized sc lock --key-file "$K"
sc lock --key-file "$N"
sc unlock --key-file "$N"
sc save --key-file "$N"

echo "== power cycle: locked again (LockOnReset), the kernel's resume replay unlocks"
power_cycle
if can_read; then fail "drive readable after a power cycle"; fi
python3 -c "
import fcntl, os
fd = os.open('$OPAL-ctl', os.O_RDWR)
r = fcntl.ioctl(fd, 0x4f01)  # OTD_IOC_RESUME: opal_unlock_from_suspend()
raise SystemExit(r)
" || fail "the kernel's saved-unlock replay failed"
can_read || fail "the kernel's resume replay did not unlock"
same_data "$W/data" || fail "data changed across the power cycle"

echo "== revert with the SID (= first key; SID never changes on 6.1)"
expect_fail xSedNotAuthorized sc revert --key-file "$N"
sc revert --key-file "$K"
sc status | grep -q "locking_enabled=0 locked=0" || fail "revert left locking enabled"
if same_data "$W/data"; then fail "data readable after revert"; fi

echo "== the revert freed the drive: a new owner can take it"
sc own --key-file "$X"
expect_fail xSedNotAuthorized sc own --key-file "$K"

echo "== every unlock was followed by IOC_OPAL_SAVE"
n=$(check_save_after_unlocks) || fail "save check: $n"
echo "unlocks checked: $n"
[ "$n" -ge 2 ] || fail "expected at least 2 unlocks in the trace, got $n"
grep -c "^IOCTL" "$W/trace"
echo "PASS"
