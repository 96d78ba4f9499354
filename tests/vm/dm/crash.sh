#!/bin/bash
# volctl killed with SIGKILL (paused there by the journal's test-only hook) at
# every named rekey point while the volume is open; before resume the volume
# opens, after resume it opens with the one remaining key and the data is
# intact.
. "$(dirname "$0")/lib.sh"
dev=$(newdisk a 40M)
vc create "$dev" vol1 --key-id key1 > /dev/null
vc open "$dev"
write_data /dev/mapper/vol1 4
vc close vol1

for p in begin add-slot slot-added token-set token-updated provider-partial provider-commit \
         provider-committed destroy-old old-destroyed token-final retire-old done; do
  step "killed at $p"
  vc open "$dev"
  if [ "$p" = provider-partial ]; then at=keymedia:medium-written; else at=volume.rekey:$p; fi
  killed_at "$at" rekey "$dev"
  vc close vol1
  vc open "$dev" 2> "$W/err" || { cat "$W/err"; fail "volume does not open after crash at $p"; }
  check_data /dev/mapper/vol1 4
  vc close vol1
  vc resume
  vc show "$dev" > "$W/show"
  grep -qx 'rekey_in_progress=no' "$W/show" || fail "rekey still in progress after resume ($p)"
  slot=$(sed -n 's/^keyslot=//p' "$W/show"); gen=$(sed -n 's/^generation=//p' "$W/show")
  grep -qx "keyslots=$slot" "$W/show" || { cat "$W/show"; fail "more than one keyslot after resume ($p)"; }
  [ "$(ls "$W/m1")" = "storcrypt-key1.g$gen.key" ] || { ls "$W/m1"; fail "m1 holds other generations ($p)"; }
  [ "$(ls "$W/m2")" = "storcrypt-key1.g$gen.key" ] || { ls "$W/m2"; fail "m2 holds other generations ($p)"; }
  ak_file "$W/m1/storcrypt-key1.g$gen.key" "$W/ak"
  cryptsetup open --test-passphrase --key-slot "$slot" --key-file "$W/ak" "$dev" || fail "cryptsetup rejects key ($p)"
  vc open "$dev"
  check_data /dev/mapper/vol1 4
  vc close vol1
  echo "crash at $p: generation $gen in keyslot $slot"
done
echo "crash OK"
