#!/bin/bash
# Unlock latency with real activation: `volctl open` (key media + pbkdf2/1000
# keyslot + dm table load) vs `cryptsetup open` of a default (argon2id) LUKS2
# volume holding the same AK. Prints means and the ratio.
. "$STORCRYPT_SOURCE_DIR/tests/vm/dm/lib.sh"
now() { date +%s%N; }
ours_dev=$(newdisk ours 40M); argon_dev=$(newdisk argon 40M)
vc create "$ours_dev" vol1 --key-id key1 > /dev/null 2>&1
ak_file "$W/m1/storcrypt-key1.g1.key" "$W/ak"
echo "formatting baseline with cryptsetup defaults (argon2id benchmark; slow under TCG)"
cryptsetup luksFormat -q --type luks2 --key-file "$W/ak" "$argon_dev"
cryptsetup luksDump "$argon_dev" | grep -E 'PBKDF|Memory|Time cost|Threads' | head -4
N=5; total=0
for i in $(seq $N); do t=$(now); vc open "$ours_dev" 2>/dev/null; total=$((total + $(now) - t)); vc close vol1; done
ours=$((total / N / 1000000))
total=0
for i in $(seq $N); do t=$(now); vc show "$ours_dev" > /dev/null; total=$((total + $(now) - t)); done
show=$((total / N / 1000000))
total=0
for i in $(seq $N); do t=$(now); cryptsetup open --key-slot 0 --key-file "$W/ak" "$ours_dev" cli; total=$((total + $(now) - t)); cryptsetup close cli; done
cli=$((total / N / 1000000))
B=2; total=0
for i in $(seq $B); do t=$(now); cryptsetup open --key-file "$W/ak" "$argon_dev" base; total=$((total + $(now) - t)); cryptsetup close base; done
base=$((total / B / 1000000))
echo "BENCH unlock: ours (volctl open) ${ours} ms, of which process start + header load (volctl show) ${show} ms;" \
  "cryptsetup open on our pbkdf2 volume ${cli} ms (means of $N); cryptsetup open argon2id ${base} ms (mean of $B)"
python3 -c "print('BENCH unlock ratio: argon2 baseline / ours = %.1fx; argon2 / cryptsetup-on-pbkdf2 = %.1fx' % ($base / max($ours, 1), $base / max($cli, 1)))"
