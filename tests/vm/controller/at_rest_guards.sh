#!/bin/bash
# Issue 13, "Destructive operations on the wrong device", through storcryptd
# and storcrypt on real loop devices:
#   - volume create refuses ext4, an LVM PV, a LUKS1 and a foreign LUKS2
#     header (--force does not help against a device in use), a read-only
#     mounted filesystem, a device held by a dm mapping and one opened with
#     O_EXCL, each with an error that says what it found, and every refused
#     device reads back byte-identical (sha256 of the first 8 MiB);
#   - a device that cannot be read (dm "error" target) is an error, not blank;
#   - --force overwrites a foreign signature and says so;
#   - volume erase refuses LUKS1, foreign LUKS2, an open volume, a volume held
#     or opened exclusively, and a storcrypt volume not in the database;
#   - after the state database is deleted: adopt refuses foreign devices and a
#     volume whose key media are away, then adopts it; it opens with its key,
#     the data reads back, and erase works again.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
daemon_lib_init guards guards-lab gvol

EXTRA_LOOPS=()
HOLDER=""
guards_cleanup() {
  [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null || true
  umount "$W/mnt" 2>/dev/null || true
  for m in g-hold g-err; do dmsetup remove "$m" >/dev/null 2>&1 || true; done
  for l in "${EXTRA_LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  cleanup
}
trap guards_cleanup EXIT

mkloop() {  # name -> prints the loop device (32 MiB, zeros)
  truncate -s 32M "$W/$1.img"
  losetup --find --show "$W/$1.img"
}
sum8() { head -c 8M "$1" | sha256sum | cut -d' ' -f1; }
# refused EXPECTED_NAME EXPECTED_TEXT storcrypt-args...: the command fails,
# its JSON error has that name and its message contains the text.
refused() {
  local name=$1 text=$2; shift 2
  echo "+ storcrypt $* (expect $name: $text)"
  local out rc=0
  out=$(scj "$@") || rc=$?
  [ "$rc" -ne 0 ] || fail "storcrypt $* succeeded; expected $name"
  local got msg
  got=$(jq -r .error.name <<< "$out")
  msg=$(jq -r .error.message <<< "$out")
  echo "  -> $got: $msg"
  [ "$got" = "$name" ] || fail "storcrypt $*: error $got, expected $name ($msg)"
  [[ $msg == *"$text"* ]] || fail "storcrypt $*: message does not say '$text': $msg"
}
hold_excl() {  # device: a process keeps it open with O_EXCL
  python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
time.sleep(120)' "$1" > "$W/holder.out" &
  HOLDER=$!
  for _ in $(seq 1 100); do grep -q held "$W/holder.out" 2>/dev/null && return 0; sleep 0.1; done
  fail "O_EXCL holder did not start"
}
unhold() { kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true; HOLDER=""; }
mkdir -p "$W/mnt"
KEY="$W/foreign.key"
head -c 32 /dev/urandom > "$KEY"

echo "== foreign devices"
L_EXT4=$(mkloop ext4); EXTRA_LOOPS+=("$L_EXT4")
mkfs.ext4 -q -F "$L_EXT4"
L_PV=$(mkloop pv); EXTRA_LOOPS+=("$L_PV")
if command -v pvcreate >/dev/null; then
  pvcreate -q -y "$L_PV" 2>&1 | grep -v "leaked on" || true
  HAVE_LVM=1
else
  echo "SKIP-PART: lvm2 (pvcreate) not installed in the guest; the LVM PV case is not run"
  HAVE_LVM=0
fi
L_LUKS1=$(mkloop luks1); EXTRA_LOOPS+=("$L_LUKS1")
cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file "$KEY" "$L_LUKS1"
L_LUKS2=$(mkloop luks2); EXTRA_LOOPS+=("$L_LUKS2")
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$KEY" "$L_LUKS2"
L_MNT=$(mkloop mnt); EXTRA_LOOPS+=("$L_MNT")
mkfs.ext4 -q -F "$L_MNT"
mount -o ro "$L_MNT" "$W/mnt"
L_HELD=$(mkloop held); EXTRA_LOOPS+=("$L_HELD")
L_FORCE=$(mkloop force); EXTRA_LOOPS+=("$L_FORCE")
mkfs.ext4 -q -F "$L_FORCE"
blkid -p "$L_EXT4" "$L_PV" "$L_LUKS1" "$L_LUKS2" "$L_MNT" || true

declare -A BEFORE
for d in "$L_EXT4" "$L_PV" "$L_LUKS1" "$L_LUKS2" "$L_MNT" "$L_HELD"; do BEFORE[$d]=$(sum8 "$d"); done

start_daemon
sc keymedia init "$W/media1" >/dev/null
sc keymedia init "$W/media2" >/dev/null

echo "== volume create refuses"
refused xDeviceNotBlank "$L_EXT4 is not blank: it holds ext4 filesystem" volume create "$L_EXT4" g1
if [ "$HAVE_LVM" = 1 ]; then
  refused xDeviceNotBlank "it holds LVM2_member" volume create "$L_PV" g1
fi
refused xDeviceNotBlank "it holds crypto_LUKS version 1" volume create "$L_LUKS1" g1
refused xDeviceNotBlank "it holds crypto_LUKS version 2" volume create "$L_LUKS2" g1
refused xDeviceInUse "it is in use (mounted at $W/mnt)" volume create "$L_MNT" g1
refused xDeviceInUse "mounted at $W/mnt" volume create "$L_MNT" g1 --force
DM_DISABLE_UDEV=1 dmsetup create --noudevsync g-hold --table "0 2048 linear $L_HELD 0"
dmn=$(basename "$(readlink -f /sys/dev/block/"$(dmsetup info -c --noheadings -o major,minor g-hold | tr -d ' ')")")
refused xDeviceInUse "held by $dmn (/dev/mapper/g-hold)" volume create "$L_HELD" g1 --force
dmsetup remove g-hold
hold_excl "$L_HELD"
refused xDeviceInUse "opened exclusively by another process" volume create "$L_HELD" g1 --force
unhold
# Nothing was stored for any refused create.
[ -z "$(find "$W/media1" "$W/media2" -name 'storcrypt-*.key')" ] ||
  { ls -l "$W/media1" "$W/media2"; fail "a refused create left key files on the media"; }
[ "$(scj volume list | jq '.result.volumes | length')" = 0 ] || fail "a refused create registered a volume"

echo "== a device that cannot be read is an error, not blank"
DM_DISABLE_UDEV=1 dmsetup create --noudevsync g-err --table "0 65536 error"
dmsetup mknodes g-err
[ -b /dev/mapper/g-err ] || fail "/dev/mapper/g-err is not a block device"
out=$(scj volume create /dev/mapper/g-err g1) && fail "create on an unreadable device succeeded"
msg=$(jq -r .error.message <<< "$out"); echo "  -> $msg"
[[ $msg == *"Input/output error"* ]] || fail "create on an unreadable device: $msg"
out=$(scj volume adopt /dev/mapper/g-err) && fail "adopt of an unreadable device succeeded"
msg=$(jq -r .error.message <<< "$out"); echo "  -> $msg"
[[ $msg == *"Input/output error"* ]] || fail "adopt of an unreadable device: $msg"
dmsetup remove g-err

echo "== --force overwrites a foreign signature and says so"
scj volume create "$L_FORCE" gforce --force > "$W/force.json" || { cat "$W/force.json"; fail "create --force"; }
jq -e --arg w "overwriting ext4 filesystem on $L_FORCE (--force)" '.result.warnings | index($w)' "$W/force.json" \
  >/dev/null || { cat "$W/force.json"; fail "create --force did not warn what it overwrote"; }
refused xVolumeExists "already holds storcrypt volume gforce" volume create "$L_FORCE" g2 --force
sc volume close gforce >/dev/null 2>&1 || true
sc volume erase gforce --yes

echo "== volume erase refuses"
refused xNotStorcryptVolume "is not a storcrypt volume: it holds crypto_LUKS version 1" volume erase "$L_LUKS1" --yes
refused xNotStorcryptVolume "has no storcrypt token" volume erase "$L_LUKS2" --yes
refused xNotStorcryptVolume "has no storcrypt token" volume adopt "$L_LUKS2"
refused xNotStorcryptVolume "it holds ext4 filesystem" volume adopt "$L_EXT4"
if [ "$HAVE_LVM" = 1 ]; then
  refused xNotStorcryptVolume "it holds LVM2_member" volume erase "$L_PV" --yes
fi
# A mounted filesystem is refused as what it is (the in-use refusal of erase is
# shown below on a storcrypt volume held by a mapping and by an O_EXCL opener).
refused xNotStorcryptVolume "it holds ext4 filesystem" volume erase "$L_MNT" --yes

echo "== every refused device is byte-identical"
umount "$W/mnt"
for d in "${!BEFORE[@]}"; do
  after=$(sum8 "$d")
  [ "$after" = "${BEFORE[$d]}" ] || fail "$d changed: ${BEFORE[$d]} -> $after"
done
echo "sha256 of the first 8 MiB unchanged on ${#BEFORE[@]} devices"
cryptsetup open --test-passphrase --key-file "$KEY" "$L_LUKS1" || fail "the LUKS1 volume no longer opens"
cryptsetup open --test-passphrase --key-file "$KEY" "$L_LUKS2" || fail "the foreign LUKS2 volume no longer opens"
if [ "$HAVE_LVM" = 1 ]; then
  [ "$(blkid -p -o value -s TYPE "$L_PV")" = LVM2_member ] || fail "the PV signature is gone"
fi

echo "== erase refuses a volume open or in use"
sc volume create "$LOOP" gvol --key-id gkey >/dev/null
[ "$(scj volume show gvol | jq -r .result.state)" = open ] || sc volume open gvol >/dev/null
head -c 2M /dev/urandom > "$W/data"
dd if="$W/data" of=/dev/mapper/gvol bs=1M oflag=direct status=none
refused xVolumeOpen "is open as /dev/mapper/gvol" volume erase gvol --yes
sc volume close gvol
DM_DISABLE_UDEV=1 dmsetup create --noudevsync g-hold --table "0 2048 linear $LOOP 0"
refused xDeviceInUse "held by" volume erase gvol --yes
dmsetup remove g-hold
hold_excl "$LOOP"
refused xDeviceInUse "opened exclusively by another process" volume erase gvol --yes
unhold
out=$("$C" --socket "$W/sock" volume erase gvol 2>&1) && fail "erase without --yes succeeded"
[[ $out == *"--yes"* ]] || fail "erase without --yes: $out"

echo "== the database is lost: erase refuses, adopt re-registers"
stop_daemon
rm -rf "$W/state"
start_daemon
[ "$(scj volume list | jq '.result.volumes | length')" = 0 ] || fail "volumes listed after the database was deleted"
refused xVolumeNotRegistered "is not registered on this node" volume erase "$LOOP" --yes
mv "$W/media1" "$W/media1.away"; mv "$W/media2" "$W/media2.away"
out=$(scj volume adopt "$LOOP") && fail "adopt succeeded with the key media away"
msg=$(jq -r .error.message <<< "$out"); echo "  -> $msg"
[[ $msg == *"not adopting $LOOP: key gkey generation 1"*"no valid copy"* ]] || fail "adopt without key media: $msg"
[ "$(scj volume list | jq '.result.volumes | length')" = 0 ] || fail "adopt without its key registered the volume"
mv "$W/media1.away" "$W/media1"; mv "$W/media2.away" "$W/media2"
scj volume adopt "$LOOP" > "$W/adopt.json" || { cat "$W/adopt.json"; fail "adopt"; }
jq -e '.result.adopted == true and .result.name == "gvol" and .result.key_id == "gkey"' "$W/adopt.json" >/dev/null ||
  { cat "$W/adopt.json"; fail "adopt result"; }
[ "$(scj volume list | jq -r '.result.volumes[0].name')" = gvol ] || fail "adopted volume not listed"
sc volume open gvol >/dev/null
cmp -n $((2 * 1024 * 1024)) "$W/data" /dev/mapper/gvol || fail "data of the adopted volume differs"
echo "adopted volume opens with its key; data identical"
sc volume close gvol
sc volume erase gvol --yes
if cryptsetup isLuks "$LOOP"; then fail "$LOOP still has a LUKS header after erase"; fi
[ -z "$(find "$W/media1" "$W/media2" -name 'storcrypt-gkey*')" ] || fail "key copies left after erase"
stop_daemon
echo "PASS: at-rest guards against the wrong device"
