#!/bin/bash
# Rekey while an ext4 filesystem on the volume is mounted and being written.
. "$(dirname "$0")/lib.sh"
dev=$(newdisk a 64M)
vc create "$dev" vol1 --key-id key1 > /dev/null
ak_file "$W/m1/storcrypt-key1.g1.key" "$W/ak1"
vc open "$dev"
mkfs.ext4 -q /dev/mapper/vol1
mount /dev/mapper/vol1 /mnt
head -c 4M /dev/urandom > /mnt/before
(cd /mnt && sha256sum before) > "$W/before.sha"

step "background writer"
rm -f "$W/stop"
( n=0; while [ ! -e "$W/stop" ]; do
    dd if=/dev/urandom bs=64k count=4 status=none >> /mnt/bg; sync /mnt/bg; n=$((n+1)); echo $n > "$W/chunks"
  done ) &
writer=$!
until [ -s "$W/chunks" ]; do sleep 0.2; done
echo "chunks before rekey: $(cat "$W/chunks")"

step "rekey"
vc rekey "$dev"
kill -0 $writer || fail "writer was not running through the rekey"
echo "chunks after rekey: $(cat "$W/chunks")"
touch "$W/stop"
wait $writer
(cd /mnt && sha256sum bg) > "$W/bg.sha"
vc show "$dev" | tee "$W/show"
grep -qx 'generation=2' "$W/show" || fail "generation not 2"
grep -qx 'keyslots=1' "$W/show" || fail "keyslots are not exactly {1}"
grep -qx 'state=open' "$W/show" || fail "volume not open after rekey"
umount /mnt
vc close vol1

step "old key is gone everywhere, new key opens"
[ -e "$W/m1/storcrypt-key1.g1.key" ] && fail "old key still on m1"
[ -e "$W/m2/storcrypt-key1.g1.key" ] && fail "old key still on m2"
must_fail cryptsetup open --test-passphrase --key-file "$W/ak1" "$dev"
ak_file "$W/m2/storcrypt-key1.g2.key" "$W/ak2"
cryptsetup open --test-passphrase --key-slot 1 --key-file "$W/ak2" "$dev"
vc open "$dev"
mount /dev/mapper/vol1 /mnt
(cd /mnt && sha256sum -c "$W/before.sha" && sha256sum -c "$W/bg.sha") || fail "data changed across rekey"
umount /mnt
vc close vol1
echo "rekey OK"
