#!/bin/bash
# Crypto erase: afterwards nothing unlocks. A crash after the keyslots and
# tokens are gone (header not yet wiped) lets cryptsetup show an empty header.
. "$(dirname "$0")/lib.sh"
dev=$(newdisk a 40M)
vc create "$dev" vol1 --key-id key1 > "$W/show"
uuid=$(sed -n 's/^uuid=//p' "$W/show")
[ -f "$W/backup/storcrypt-$uuid.luks2hdr" ] || fail "no header backup was made"
vc open "$dev"
write_data /dev/mapper/vol1 4
must_fail vc erase "$dev"
vc close vol1
ak_file "$W/m1/storcrypt-key1.g1.key" "$W/oldak"

step "erase, killed (SIGKILL) after keyslots and tokens are destroyed"
killed_at volume.erase:tokens-removed erase "$dev"
cryptsetup luksDump "$dev" > "$W/dump"
sed -n '/^Keyslots:/,/^Tokens:/p' "$W/dump" | grep -E '^  [0-9]+: ' > /dev/null && { cat "$W/dump"; fail "keyslots remain"; }
sed -n '/^Tokens:/,/^Digests:/p' "$W/dump" | grep -E '^  [0-9]+: ' > /dev/null && { cat "$W/dump"; fail "tokens remain"; }
must_fail cryptsetup open --test-passphrase --key-file "$W/oldak" "$dev"

step "resume finishes the erase"
vc resume | grep "volume.erase $dev completed" > /dev/null || fail "resume did not complete the erase"
must_fail cryptsetup luksDump "$dev"
cmp -n 16777216 "$dev" /dev/zero || fail "header area not zeroed"
set +e; vc open "$dev" 2> "$W/err"; rc=$?; set -e
[ $rc -ne 0 ] || fail "our open succeeded after erase"
grep -q 'no LUKS2 header' "$W/err" || { cat "$W/err"; fail "unclear error after erase"; }
must_fail cryptsetup open --key-file "$W/oldak" "$dev" indep
[ -z "$(ls -A "$W/m1" "$W/m2" | grep key)" ] || { ls -la "$W/m1" "$W/m2"; fail "key copies remain"; }
[ -z "$(ls -A "$W/backup")" ] || fail "header backup remains"

step "erase without crash"
dev2=$(newdisk b 40M)
vc create "$dev2" vol2 --key-id key2 > /dev/null
ak_file "$W/m2/storcrypt-key2.g1.key" "$W/oldak2"
vc erase "$dev2"
must_fail cryptsetup luksDump "$dev2"
must_fail cryptsetup open --test-passphrase --key-file "$W/oldak2" "$dev2"
must_fail vc open "$dev2"
[ ! -e "$W/m1/storcrypt-key2.g1.key" ] || fail "key2 copy remains"
echo "erase OK"
