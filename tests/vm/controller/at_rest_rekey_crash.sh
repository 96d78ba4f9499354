#!/bin/bash
# storcryptd killed with SIGKILL from outside at every named point of
# `storcrypt volume create`, `rekey` and `erase` (the journal's test-only hook
# STORCRYPT_PAUSE_AT pauses the daemon there and announces it; nothing in the
# daemon exits by itself), then restarted normally: the journal's recovery at
# start-up settles the operation, and the key media, the LUKS2 header (checked
# with cryptsetup), the kernel's mapping and the database agree:
#   create: until the token is recorded as written it rolls back (no header it wrote, no
#           key copy, no header backup, not registered); from it on the volume
#           is registered and opens with its key;
#   rekey:  before the new key is committed to the media it rolls back, from
#           it on it goes forward; one keyslot, one key generation on every
#           medium, the volume opens, the data reads back identical;
#   erase:  always forward: no header, no key copy, no backup, not registered.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
daemon_lib_init rkcrash crash-lab crashvol
DB=$W/state/storcrypt.db
mkdir -p "$W/hdr"
cat > "$W/at-rest.json" <<EOF2
{"system_id": "crash-lab", "media_dirs": ["$W/media1", "$W/media2"], "desired_copies": 2,
 "header_backup_dir": "$W/hdr", "unlock_retry_seconds": 2}
EOF2

show() { scj volume show crashvol | jq -c .result; }
is_open() { [ "$(show | jq -r .state)" = open ]; }
wait_open() {
  for _ in $(seq 1 600); do is_open && return 0; sleep 0.1; done
  fail "volume did not open after restart: $(show)"
}
verify() { cmp -n $((1024 * 1024)) "$W/data" /dev/mapper/crashvol || fail "data differs ($1)"; }
q() { sqlite3 "$DB" "$1"; }
# The journal settled everything it was given.
settled() {
  local n; n=$(q "SELECT count(*) FROM journal_ops WHERE state != 'done' AND state != 'rolled-back'")
  [ "$n" = 0 ] || fail "$n journal operation(s) not settled after the restart ($1): $(q "SELECT id, kind, state, note FROM journal_ops WHERE state != 'done' AND state != 'rolled-back'")"
}
# No volume: no LUKS header on the device, no key copy, no header backup, not registered.
agree_absent() {
  settled "$1"
  if cryptsetup isLuks "$LOOP"; then fail "a LUKS header remains on $LOOP ($1)"; fi
  [ -z "$(ls -A "$W/media1" "$W/media2" | grep 'storcrypt-crash-key' || true)" ] || {
    ls -l "$W/media1" "$W/media2"; fail "key copies remain ($1)"; }
  [ -z "$(ls -A "$W/hdr")" ] || { ls -l "$W/hdr"; fail "header backup remains ($1)"; }
  [ "$(q "SELECT count(*) FROM dm_volumes")" = 0 ] || fail "volume still registered ($1)"
  [ -z "$(dmsetup info -c --noheadings -o name crashvol 2>/dev/null || true)" ] || fail "mapping remains ($1)"
}
# One volume: registered with the header's UUID, one keyslot opened by the
# one key generation found on every medium (cryptsetup, independently of
# storcrypt), opened by the daemon.
agree_present() {  # WHAT GENERATION
  settled "$1"
  wait_open
  local s uuid slot
  s=$(show)
  uuid=$(cryptsetup luksUUID "$LOOP") || fail "no LUKS header on $LOOP ($1)"
  [ "$(q "SELECT uuid FROM dm_volumes WHERE name = 'crashvol'")" = "$uuid" ] || fail "database and header disagree ($1)"
  [ "$(jq -r .rekey_in_progress <<< "$s")" = false ] || fail "rekey still in progress ($1): $s"
  [ "$(jq '.keyslots | length' <<< "$s")" = 1 ] || fail "not exactly one keyslot ($1): $s"
  [ "$(jq -r .generation <<< "$s")" = "$2" ] || fail "generation $(jq -r .generation <<< "$s"), want $2 ($1)"
  slot=$(jq -r .keyslot <<< "$s")
  for m in media1 media2; do
    [ "$(ls "$W/$m" | grep 'storcrypt-crash-key' || true)" = "storcrypt-crash-key.g$2.key" ] || {
      ls -l "$W/$m"; fail "$m does not hold exactly generation $2 ($1)"; }
    (umask 077; sed -n 's/^ak: //p' "$W/$m/storcrypt-crash-key.g$2.key" | xxd -r -p > "$W/ak")
    cryptsetup open --test-passphrase --key-slot "$slot" --key-file "$W/ak" "$LOOP" ||
      fail "the key on $m does not open keyslot $slot ($1)"
  done
  rm -f "$W/ak"
  [ -f "$W/hdr/storcrypt-$uuid.luks2hdr" ] || fail "no header backup ($1)"
}
# crash POINT storcrypt-args...: the daemon (started to pause at POINT) is
# killed there while running the command; the command fails; as after a
# reboot the kernel mapping goes; the daemon restarts normally.
crash() {
  local at=$1; shift
  echo "== killed at $at"
  "$C" --socket "$W/sock" "$@" > "$W/cmd.out" 2>&1 &
  local cpid=$!
  kill_paused "$at"
  if wait "$cpid"; then fail "storcrypt $* succeeded although the daemon was killed at $at"; fi
  dmsetup remove crashvol >/dev/null 2>&1 || true
  start_daemon
}
create_cmd=(volume create "$LOOP" crashvol --key-id crash-key)
erase_cmd=(volume erase crashvol --yes)
erase_points=(begin slots-destroyed tokens-removed header-wiped backups-shredded keys-destroyed unregistered)
ei=0
erase_crash() {  # the registered volume, closed, erased with a crash at the next erase point
  is_open && sc volume close crashvol >/dev/null
  stop_daemon
  start_daemon "volume.erase:${erase_points[$ei]}"
  wait_open  # the start-up unlock opens it; erase refuses an open volume
  sc volume close crashvol >/dev/null
  crash "volume.erase:${erase_points[$ei]}" "${erase_cmd[@]}"
  agree_absent "erase killed at ${erase_points[$ei]}"
  ei=$((ei + 1))
}

start_daemon
sc keymedia init "$W/media1"
sc keymedia init "$W/media2"
stop_daemon

echo "=== volume create"
for p in begin store-key key-stored format formatted set-token token-set register registered done; do
  start_daemon "volume.create:$p"
  crash "volume.create:$p" "${create_cmd[@]}"
  case $p in
    begin|store-key|key-stored|format|formatted|set-token) agree_absent "create killed at $p" ;;
    *)
      agree_present "create killed at $p" 1
      [ "$p" = done ] || erase_crash
      ;;
  esac
  stop_daemon
done

echo "=== volume rekey (the volume open and holding data)"
start_daemon
wait_open
head -c 1M /dev/urandom > "$W/data"
dd if="$W/data" of=/dev/mapper/crashvol bs=1M oflag=direct status=none
sc volume close crashvol
stop_daemon
gen=1
for p in begin add-slot slot-added token-set token-updated provider-partial provider-commit \
         provider-committed destroy-old old-destroyed token-final retire-old done; do
  at=volume.rekey:$p
  [ "$p" = provider-partial ] && at=keymedia:medium-written  # one medium has the new key
  start_daemon "$at"
  wait_open  # start-up unlock (media present): rekeyed while open
  verify "before the rekey killed at $p"
  crash "$at" volume rekey crashvol
  case $p in
    begin|add-slot|slot-added|token-set|token-updated) ;;  # rolled back: no new key on the media yet
    *) gen=$((gen + 1)) ;;                                    # forward from the first medium written
  esac
  agree_present "rekey killed at $p" "$gen"
  verify "after the rekey killed at $p and the restart"
  sc volume close crashvol >/dev/null
  stop_daemon
done

echo "== clean rekey after the crashes"
start_daemon
wait_open
sc volume rekey crashvol
gen=$((gen + 1))
sc volume close crashvol
sc volume open crashvol
verify "after the final rekey"
agree_present "clean rekey" "$gen"
unfixed=$(scj event list --code 5010 --unfixed | jq '.result.events | length')
[ "$unfixed" = 0 ] || fail "unfixed locked-volume events remain"

echo "=== volume erase (remaining points)"
while [ "$ei" -lt "${#erase_points[@]}" ]; do
  erase_crash
  stop_daemon
  if [ "$ei" -lt "${#erase_points[@]}" ]; then
    start_daemon
    sc "${create_cmd[@]}" >/dev/null
  fi
done
[ -z "$PID" ] || stop_daemon
echo "PASS: create (10 points), rekey (13) and erase (7) killed with SIGKILL, settled at restart; media, header, kernel and database agree"
