#!/bin/bash
# Issue #7: at start-up storcryptd unlocks every registered volume it can,
# retries the rest, and raises a fault naming the volume and the reason for
# each that stays locked; the fault is marked fixed when a retry succeeds.
#   - daemon 1: create a volume (key on two media), write data, close, stop;
#   - media moved away, daemon 2: event 5010 names the volume and the reason,
#     volume closed, no duplicate event across retries;
#   - media back: within the retry interval (2 s) the volume opens, the data
#     reads back identical and the event is marked fixed.
set -euo pipefail
. "$(dirname "$0")/daemon_lib.sh"
daemon_lib_init unlock unlock-lab unlockvol

state() { scj volume show unlockvol | jq -r .result.state; }
locked_events() { scj event list --code 5010 | jq -c '[.result.events[] | select(.sense.volume == "unlockvol")]'; }
# wait_for DESCRIPTION CMD...: poll (bounded, 60 s) until CMD succeeds
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 600); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for: $what"
}

echo "== daemon 1: create, write, close"
start_daemon
sc keymedia init "$W/media1"
sc keymedia init "$W/media2"
sc volume create "$LOOP" unlockvol --key-id unlock-key
[ "$(state)" = open ] || sc volume open unlockvol >/dev/null
[ "$(state)" = open ] || fail "volume did not open in daemon 1"
head -c 4M /dev/urandom > "$W/data"
dd if="$W/data" of=/dev/mapper/unlockvol bs=1M oflag=direct status=none
sc volume close unlockvol
[ "$(locked_events)" = "[]" ] || fail "a locked-volume event before any restart: $(locked_events)"
stop_daemon

echo "== daemon 2: media moved away"
mv "$W/media1" "$W/media1.away"
mv "$W/media2" "$W/media2.away"
start_daemon
has_event() { [ "$(locked_events | jq length)" -ge 1 ]; }
wait_for "event 5010 for unlockvol" has_event
ev=$(locked_events | jq -c '.[0]')
echo "event: $ev"
msg=$(jq -r .message <<< "$ev")
[[ $msg == *unlockvol* ]] || fail "event message does not name the volume: $msg"
[[ $msg == *"no valid copy"* ]] || fail "event message does not give the reason: $msg"
[[ $msg == *"medium not present"* ]] || fail "event message does not say the media are missing: $msg"
[[ $msg == *"0 of 2 key media present"* ]] || fail "event message does not count the media: $msg"
[ "$(jq -r .severity <<< "$ev")" = error ] || fail "severity is not error"
[ "$(jq -r .fixed <<< "$ev")" = false ] || fail "event already fixed"
[ "$(jq '.fix_procedure.user_actions | length' <<< "$ev")" -ge 1 ] || fail "no user actions in the fix procedure"
[ "$(state)" = closed ] || fail "volume is not closed without its key media"
[ ! -e /dev/mapper/unlockvol ] || fail "/dev/mapper/unlockvol exists without key media"
# Several retries (interval 2 s) with the same reason: still one event.
sleep 5
[ "$(locked_events | jq length)" = 1 ] || fail "duplicate locked-volume events: $(locked_events)"
[ "$(state)" = closed ] || fail "volume opened without its key media"
sc event list --code 5010

echo "== media restored"
mv "$W/media1.away" "$W/media1"
mv "$W/media2.away" "$W/media2"
is_open() { [ "$(state)" = open ]; }
wait_for "unlockvol opened by a retry" is_open
cmp -n $((4 * 1024 * 1024)) "$W/data" /dev/mapper/unlockvol || fail "data read back differs"
echo "data read back identical"
is_fixed() { [ "$(locked_events | jq -r '.[0].fixed')" = true ]; }
wait_for "event marked fixed" is_fixed
[ "$(locked_events | jq length)" = 1 ] || fail "extra locked-volume events: $(locked_events)"
sc event list --code 5010
sc volume close unlockvol
stop_daemon
echo "PASS: at-rest start-up unlock with retry"
