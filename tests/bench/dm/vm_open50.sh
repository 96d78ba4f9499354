#!/bin/bash
# Open 50 volumes: `volctl open` for each vs `cryptsetup open --key-file` of
# the same 50 volumes (same pbkdf2 keyslots), both in this run; ratio.
. "$STORCRYPT_SOURCE_DIR/tests/vm/dm/lib.sh"
now() { date +%s%N; }
N=50
# each LUKS2 format zero-fills a 16 MiB keyslot area in the guest's RAM-backed /tmp
mount -o remount,size=2200M /tmp
devs=()
for i in $(seq $N); do devs+=("$(newdisk v$i 17M)"); done
t=$(now)
for i in $(seq $N); do vc create "${devs[$((i-1))]}" "v$i" --key-id "k$i" > /dev/null 2> "$W/err" || { cat "$W/err"; fail "create v$i"; }; done
echo "created $N volumes in $(( ($(now) - t) / 1000000 )) ms"
t=$(now)
for i in $(seq $N); do vc open "${devs[$((i-1))]}" 2>/dev/null; done
ours=$(( ($(now) - t) / 1000000 ))
[ "$(ls /dev/mapper | grep -c '^v[0-9]')" = $N ] || fail "not all $N mappings exist"
for i in $(seq $N); do vc close "v$i"; done
for i in $(seq $N); do ak_file "$W/m1/storcrypt-k$i.g1.key" "$W/ak$i"; done
t=$(now)
for i in $(seq $N); do cryptsetup open --key-slot 0 --key-file "$W/ak$i" "${devs[$((i-1))]}" "c$i"; done
base=$(( ($(now) - t) / 1000000 ))
for i in $(seq $N); do cryptsetup close "c$i"; done
echo "BENCH open50: ours ${ours} ms total, cryptsetup CLI ${base} ms total"
python3 -c "print('BENCH open50 ratio: ours / cryptsetup = %.2f' % ($ours / max($base, 1)))"
