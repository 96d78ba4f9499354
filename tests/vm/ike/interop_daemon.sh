#!/bin/bash
# Two storcryptd, one per site, configured with the storcrypt command alone
# (issue 14's README walk-through, with real ESP), then one of them killed
# with SIGKILL mid-traffic and started again (issue 15 "Restart"):
#  - each node makes its internal root CA and endpoint certificate, exports
#    the root, and trusts the other's for ipsec; `ike peer add` on both
#    (--start start on A), `ike peer up` on A;
#  - `ike list` shows the IKE SA established with the CNSA suite on both
#    sides and the CHILD_SA's SPIs crosswise; the kernel's SAs are
#    rfc4106(gcm(aes)) with a 288-bit key in tunnel mode; ICMP and a TCP
#    transfer (SHA-256 compared) pass as ESP on B's wire, none in clear;
#  - storcryptd A is SIGKILLed while a 100/s probe stream runs, and started
#    again: it raises event 2025 (the dead instance's 2 SAs deleted, its 3
#    policies kept), brings the peer up by itself (--start start, with
#    INITIAL_CONTACT), B then holds exactly one IKE SA and one CHILD_SA, each
#    kernel exactly one pair of our SAs and its 3 policies, the probes flow
#    again, and no protected packet reached B's wire in clear at any time;
#  - `ike peer remove` on both sides leaves nothing of ours in either kernel.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
D=$build/controller/storcryptd
C=$build/controller/storcrypt
[ -x "$D" ] && [ -x "$C" ] || { echo "storcryptd/storcrypt not built in $build"; exit 1; }
ike_init ikd
ike_net_direct
declare -A DNS=([a]=$A [b]=$B) DPID=()

# The daemon's log goes to $W/d-NODE.out, which ike_dump prints on failure.
daemon_start() {  # daemon_start a|b
  local d=$W/$1
  mkdir -p "$d"
  printf 'state_directory = %s/state\nsocket_path = %s/sock\nlog_level = info\n' "$d" "$d" > "$d/storcrypt.conf"
  rm -f "$d/sock"
  ip netns exec "${DNS[$1]}" "$D" --config "$d/storcrypt.conf" --foreground >> "$W/d-$1.out" 2>&1 &
  DPID[$1]=$!
  PIDS+=($!)
  local i; for i in $(seq 100); do [ -S "$d/sock" ] && return 0; sleep 0.1; done
  fail "storcryptd $1 did not start"
}
# Bounded: a daemon that stops answering fails the scenario instead of hanging the guest.
sc() { local n=$1; shift; echo "+ [$n] storcrypt $*" >&2; timeout 20 "$C" --socket "$W/$n/sock" "$@"; }
# scj NODE ARGS...: the JSON result of a command that must succeed
scj() {
  local n=$1; shift
  local out; out=$(timeout 20 "$C" --socket "$W/$n/sock" --json "$@") || fail "[$n] storcrypt $*: $out"
  jq -e '.ok' > /dev/null <<<"$out" || fail "[$n] storcrypt $*: $out"
  jq -c '.result' <<<"$out"
}
# established NODE: the established IKE SA of `ike list`, or nothing
established() { scj "$1" ike list | jq -c '[.sas[] | select(.state == "established")] | .[0] // empty'; }
# wait_child NODE SECONDS: an established IKE SA with a CHILD_SA, printed
wait_child() {
  local end=$((SECONDS + $2)) s; while [ "$SECONDS" -lt "$end" ]; do
    s=$(established "$1")
    [ -n "$s" ] && [ "$(jq '.children | length' <<<"$s")" -ge 1 ] && { echo "$s"; return 0; }
    sleep 0.2
  done
  return 1
}
count() { grep -c . <<<"$1" || true; }
command -v jq > /dev/null || fail "jq missing: run scripts/setup.sh"

echo "== $(date +%T) two nodes configured with storcrypt alone"
daemon_start a
daemon_start b
sc a cert create --cn node-a --org storcrypt-vm --ip 192.0.2.1 > /dev/null
sc b cert create --cn node-b --org storcrypt-vm --ip 192.0.2.2 > /dev/null
sc a cert export-root --out "$W/node-a-root.pem" > /dev/null
sc b cert export-root --out "$W/node-b-root.pem" > /dev/null
sc a truststore add "$W/node-b-root.pem" --use ipsec > /dev/null
sc b truststore add "$W/node-a-root.pem" --use ipsec > /dev/null
sc a ike peer add node-b --remote 192.0.2.2 --local 192.0.2.1 --local-ts 198.51.100.0/24 \
  --remote-ts 203.0.113.0/24 --id ip:192.0.2.1 --remote-id ip:192.0.2.2 --start start > /dev/null
sc b ike peer add node-a --remote 192.0.2.1 --local 192.0.2.2 --local-ts 203.0.113.0/24 \
  --remote-ts 198.51.100.0/24 --id ip:192.0.2.2 --remote-id ip:192.0.2.1 > /dev/null
sc a ike peer up node-b > /dev/null
sa=$(wait_child a 30) || fail "A: no CHILD_SA: $(scj a ike list) events $(scj a event list)"
sb=$(wait_child b 10) || fail "B: no CHILD_SA: $(scj b ike list) events $(scj b event list)"
for s in "$sa" "$sb"; do
  [ "$(jq -r .suite <<<"$s")" = aes256-sha384-prfsha384-ecp384 ] || fail "IKE suite: $s"
  [ "$(jq -r '.children[0].suite' <<<"$s")" = aes256gcm16-noesn ] || fail "ESP suite: $s"
done
[ "$(jq -r .role <<<"$sa")/$(jq -r .role <<<"$sb")" = initiator/responder ] || fail "roles: $sa / $sb"
[ "$(jq -r .spi_i <<<"$sa")" = "$(jq -r .spi_i <<<"$sb")" ] || fail "IKE SPIs differ: $sa / $sb"
SPI_OUT=$(jq -r '.children[0].spi_out' <<<"$sa") SPI_IN=$(jq -r '.children[0].spi_in' <<<"$sa")
[ "$SPI_OUT" = "$(jq -r '.children[0].spi_in' <<<"$sb")" ] && [ "$SPI_IN" = "$(jq -r '.children[0].spi_out' <<<"$sb")" ] \
  || fail "CHILD_SA SPIs not crosswise: $sa / $sb"
ok "ike list: established on both sides, aes256-sha384-prfsha384-ecp384 + aes256gcm16, SPIs crosswise"
esp_sa "$A" 192.0.2.1 192.0.2.2 "$SPI_OUT"
esp_sa "$B" 192.0.2.1 192.0.2.2 "$SPI_OUT" > /dev/null
esp_sa "$A" 192.0.2.2 192.0.2.1 "$SPI_IN" > /dev/null
esp_flow 5301 esp 192.0.2.1 192.0.2.2 192.0.2.1 192.0.2.2
[ -n "$(scj a event list --code 2021 | jq -c '.events[]')" ] || fail "A raised no event 2021 (up)"

echo "== $(date +%T) storcryptd A SIGKILLed mid-traffic and started again"
c0=$(wire cleartext)
probe_start "$A" 198.51.100.1 203.0.113.1
sleep 2
kill -KILL "${DPID[a]}"
wait "${DPID[a]}" 2>/dev/null || true
sas=$(our_reqids "$A" state) pols=$(our_reqids "$A" policy)
[ "$(count "$sas")" = 2 ] && [ "$(count "$pols")" = 3 ] || fail "A should still hold the dead daemon's CHILD_SA: $sas / $pols"
sleep 2
echo "$(date +%T) starting A again"
daemon_start a
echo "$(date +%T) started"
sa=$(wait_child a 40) || fail "A did not bring node-b up again: $(scj a ike list) events $(scj a event list)"
ev=$(scj a event list --code 2025 | jq -c '.events[-1] // empty')
[ -n "$ev" ] || fail "A raised no event 2025 at its restart: $(scj a event list)"
[ "$(jq -c '[.sense.sas_deleted, .sense.policies_kept]' <<<"$ev")" = "[2,3]" ] || fail "event 2025: $ev"
ok "restart: event 2025 (the dead daemon's 2 SAs deleted, 3 policies kept), node-b up again"
SPI_OUT=$(jq -r '.children[0].spi_out' <<<"$sa") SPI_IN=$(jq -r '.children[0].spi_in' <<<"$sa")
# B settles: INITIAL_CONTACT makes it drop the old IKE SA and its CHILD_SA.
for i in $(seq 50); do
  nb=$(scj b ike list | jq '[.sas[] | select(.state == "established")] | length')
  [ "$nb" = 1 ] && [ "$(count "$(our_reqids "$B" state)")" = 2 ] && break
  sleep 0.2
done
sb=$(established b)
[ "$nb" = 1 ] || fail "B holds $nb IKE SAs after A's INITIAL_CONTACT: $(scj b ike list)"
[ "$(jq -r '.children | length' <<<"$sb")" = 1 ] && [ "$(jq -r '.children[0].spi_in' <<<"$sb")" = "$SPI_OUT" ] \
  || fail "B's CHILD_SA is not the new one (A out $SPI_OUT): $sb"
for ns in "$A" "$B"; do
  sas=$(our_reqids "$ns" state) pols=$(our_reqids "$ns" policy)
  [ "$(count "$sas")" = 2 ] && [ "$(count "$pols")" = 3 ] || fail "$ns: SAs $sas policies $pols (one CHILD_SA expected)"
  [ "$(sort -u <<<"$sas")" = "$(sort -u <<<"$pols")" ] || fail "$ns: policies and SAs of different reqids"
done
ip -n "$A" xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi "0x$SPI_OUT" > /dev/null \
  || fail "A's kernel lacks the new outbound SA 0x$SPI_OUT"
ok "one IKE SA and one CHILD_SA on each side (B dropped the old ones), no stale SA in either kernel"
# The probes flow again through the new CHILD_SA.
p0=$(sa_packets "$B" 192.0.2.1 192.0.2.2 "$SPI_OUT")
sleep 2
probe_stop
at_least "probes through the new CHILD_SA" $(($(sa_packets "$B" 192.0.2.1 192.0.2.2 "$SPI_OUT") - p0)) 50
ok "probe stream: $(cat "$W/probe.out") (the gap is the restart)"
[ "$(wire cleartext)" = "$c0" ] || fail "protected packets reached B in clear during the restart: $c0 -> $(wire cleartext)"
ok "no protected packet on B's wire in clear across kill, restart and renegotiation"
esp_flow 5302 esp 192.0.2.1 192.0.2.2 192.0.2.1 192.0.2.2

echo "== ike peer remove on both sides"
sc a ike peer remove node-b > /dev/null
sc b ike peer remove node-a > /dev/null
for ns in "$A" "$B"; do
  for i in $(seq 50); do [ -z "$(our_reqids "$ns" state; our_reqids "$ns" policy)" ] && break; sleep 0.2; done
  no_ike_objects "$ns"
done
ok "nothing of ours left in either kernel"
for n in a b; do kill -TERM "${DPID[$n]}"; wait "${DPID[$n]}" || fail "storcryptd $n exited with $?"; done
echo "IKE daemons OK"
