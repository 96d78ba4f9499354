#!/bin/bash
# storcryptd killed during `storcrypt volume rekey` at several journal steps
# (STORCRYPT_DM_CRASH_AT makes the daemon _exit(86) there), then restarted
# normally: start-up resumes the rekey (forward or rolled back), the start-up
# unlock opens the volume, the data reads back identical, and a later rekey
# works.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
daemon_lib_init rkcrash crash-lab crashvol

show() { scj volume show crashvol | jq -c .result; }
is_open() { [ "$(show | jq -r .state)" = open ]; }
wait_open() {
  for _ in $(seq 1 600); do is_open && return 0; sleep 0.1; done
  fail "volume did not open after restart: $(show)"
}
verify() {
  cmp -n $((4 * 1024 * 1024)) "$W/data" /dev/mapper/crashvol || fail "data differs ($1)"
}

start_daemon
sc keymedia init "$W/media1"
sc keymedia init "$W/media2"
sc volume create "$LOOP" crashvol --key-id crash-key
is_open || sc volume open crashvol >/dev/null
head -c 4M /dev/urandom > "$W/data"
dd if="$W/data" of=/dev/mapper/crashvol bs=1M oflag=direct status=none
sc volume close crashvol
stop_daemon

for step in slot-added token-updated provider-committed old-destroyed; do
  echo "== crash at $step"
  start_daemon "$step"
  wait_open  # start-up unlock (media present)
  verify "before the rekey crashing at $step"
  gen_before=$(show | jq -r .generation)
  if sc volume rekey crashvol; then fail "rekey returned success although the daemon should exit at $step"; fi
  rc=0; wait "$PID" || rc=$?
  PID=""
  [ "$rc" = 86 ] || fail "daemon exit status $rc at $step (want 86: the injected crash)"
  sc_dm=$(dmsetup info -c --noheadings -o name crashvol 2>/dev/null || true)
  echo "after the crash the mapping is ${sc_dm:-gone} (the kernel keeps it)"
  [ -n "$sc_dm" ] && dmsetup remove crashvol  # as after a reboot: the volume must be unlocked again
  start_daemon
  wait_open
  s=$(show)
  echo "after restart: $s"
  [ "$(jq -r .rekey_in_progress <<< "$s")" = false ] || fail "rekey still in progress after restart ($step)"
  [ "$(jq '.keyslots | length' <<< "$s")" = 1 ] || fail "not exactly one keyslot after resume ($step): $s"
  gen_after=$(jq -r .generation <<< "$s")
  echo "generation $gen_before -> $gen_after"
  # dm/README.md: before provider-committed the rekey rolls back (no new key
  # on the media yet); from provider-committed on it only goes forward.
  case $step in
    slot-added|token-updated) want=$gen_before ;;
    *) want=$((gen_before + 1)) ;;
  esac
  [ "$gen_after" = "$want" ] || fail "generation $gen_after after the crash at $step, want $want"
  verify "after the crash at $step and restart"
  sc volume close crashvol
  stop_daemon
done

echo "== clean rekey after the crashes"
start_daemon
wait_open
sc volume rekey crashvol
sc volume close crashvol
sc volume open crashvol
verify "after the final rekey"
unfixed=$(scj event list --code 5010 --unfixed | jq '.result.events | length')
[ "$unfixed" = 0 ] || fail "unfixed locked-volume events remain"
sc volume close crashvol
stop_daemon
echo "PASS: rekey interrupted at 4 steps, resumed at start-up, volume opened, data intact"
