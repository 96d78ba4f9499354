#!/bin/bash
# Create on a loop device, write random data, close, reopen with the key from
# the media, verify; independent reader: cryptsetup luksDump / open --key-file.
. "$(dirname "$0")/lib.sh"
dev=$(newdisk a 48M)

step "create"
vc create "$dev" vol1 --key-id key1 > "$W/show" 2> "$W/err" || { cat "$W/err"; fail "create"; }
cat "$W/show"
grep -qx 'cipher=aes-xts-plain64' "$W/show" || fail "cipher"
grep -qx 'key_bits=512' "$W/show" || fail "key bits"
grep -q 'only 2 of 2' "$W/err" && fail "unexpected copy warning"
for m in m1 m2; do
  f=$W/$m/storcrypt-key1.g1.key
  [ -f "$f" ] || fail "no key copy on $m"
  [ "$(stat -c %a "$f")" = 600 ] || fail "$f is not 0600"
done

step "open, write, close, reopen, verify"
vc open "$dev"
[ -b /dev/mapper/vol1 ] || fail "/dev/mapper/vol1 is not a block device"
vc show "$dev" | grep -x 'state=open' > /dev/null || fail "show does not say open"
write_data /dev/mapper/vol1 8
vc close vol1
[ -e /dev/mapper/vol1 ] && fail "mapping still there after close"
vc open "$dev"
check_data /dev/mapper/vol1 8
vc list "$dev" | grep 'vol1 open key1 g1' > /dev/null || fail "list"
vc close vol1
# ciphertext is not the plaintext
[ "$(dd if="$dev" bs=1M skip=16 count=8 status=none | sha256sum | cut -d' ' -f1)" != "$(cat "$W/data.sha")" ] \
  || fail "plaintext on disk"

step "independent reader: cryptsetup"
cryptsetup luksDump "$dev" > "$W/dump"
grep -q 'cipher: aes-xts-plain64' "$W/dump" || fail "luksDump cipher"
grep -q 'Cipher key: 512 bits' "$W/dump" || fail "luksDump key size"
grep -q 'sector: 4096 \[bytes\]' "$W/dump" || fail "luksDump sector size"
grep -q 'PBKDF:      pbkdf2' "$W/dump" || fail "luksDump pbkdf"
grep -q 'Iterations: 1000' "$W/dump" || fail "luksDump iterations"
grep -qE '^  [0-9]+: storcrypt' "$W/dump" || fail "luksDump shows no storcrypt token"
cryptsetup token export --token-id 0 "$dev" > "$W/token.json"
python3 - "$W/token.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert t["type"] == "storcrypt", t
assert t["key_id"] == "key1" and t["generation"] == 1 and t["keyslot"] == 0, t
assert t["provider"] == {"kind": "keymedia", "id": "local"}, t
assert t["keyslots"] == ["0"], t
PY
ak_file "$W/m1/storcrypt-key1.g1.key" "$W/ak"
cryptsetup open --key-file "$W/ak" "$dev" indep
check_data /dev/mapper/indep 8
cryptsetup close indep
rm -f "$W/ak"

step "a node with another system id refuses our media"
if "$VOLCTL" --media "$W/m1" --system-id node-b --journal "$W/j2" open "$dev" other 2> "$W/err"; then
  fail "other system opened our volume"
fi
grep -q 'other-system' "$W/err" || { cat "$W/err"; fail "other-system not reported"; }

step "no-workqueue flags reach the kernel table"
vc --no-workqueue open "$dev"
dmsetup table vol1 | grep 'no_read_workqueue' > /dev/null || { dmsetup table vol1; fail "no_read_workqueue missing"; }
dmsetup table vol1 | grep 'no_write_workqueue' > /dev/null || fail "no_write_workqueue missing"
check_data /dev/mapper/vol1 8
vc close vol1
echo "basic OK"
