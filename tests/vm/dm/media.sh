#!/bin/bash
# Key media failures: all media removed -> clear error; one of two copies
# corrupt -> opens with the good one and reports the bad one.
. "$(dirname "$0")/lib.sh"
flip_digit() {
  local c r; c=$(dd if="$1" bs=1 skip="$2" count=1 status=none)
  [ "$c" = 0 ] && r=1 || r=0
  printf '%s' "$r" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
dev=$(newdisk a 40M)
vc create "$dev" vol1 --key-id key1 > /dev/null
vc open "$dev"
write_data /dev/mapper/vol1 4
vc close vol1

step "all media removed"
mv "$W/m1" "$W/m1.away"; mv "$W/m2" "$W/m2.away"
set +e; vc open "$dev" 2> "$W/err"; rc=$?; set -e
cat "$W/err"
[ $rc -ne 0 ] || fail "opened without media"
grep -q "no valid copy of key 'key1' generation 1" "$W/err" || fail "error does not name the key"
grep -q 'medium not present' "$W/err" || fail "error does not say the media are missing"
grep -q 'fix:' "$W/err" || fail "error has no fix"
[ -e /dev/mapper/vol1 ] && fail "mapping exists"
mv "$W/m1.away" "$W/m1"; mv "$W/m2.away" "$W/m2"

step "one of two copies corrupt"
# change one hex digit of the AK: still well-formed, so only the MAC can catch it
flip_digit "$W/m1/storcrypt-key1.g1.key" 100
vc open "$dev" 2> "$W/err"
cat "$W/err"
grep -q "warning: medium $W/m1: copy corrupt (key file corrupt: integrity check (MAC) mismatch)" "$W/err" \
  || fail "corrupt copy not reported"
check_data /dev/mapper/vol1 4
vc close vol1
vc media-status | tee "$W/status"
grep -q 'storcrypt-key1.g1.key corrupt' "$W/status" || fail "media-status does not flag the corrupt copy"

step "both copies corrupt"
flip_digit "$W/m2/storcrypt-key1.g1.key" 100
set +e; vc open "$dev" 2> "$W/err"; rc=$?; set -e
[ $rc -ne 0 ] || fail "opened with corrupt copies only"
grep -q 'corrupt' "$W/err" || fail "corruption not named in error"
echo "media OK"
