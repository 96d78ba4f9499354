#!/bin/bash
# Ours <-> ours with real ESP (ikepeerctl over ike::Runner on both sites),
# next to a charon <-> charon tunnel in the same two namespaces (charon on
# ports 1500/14500, other subnets 198.18.1.0/24 <-> 198.18.2.0/24):
#  1. A initiates, B answers, default suites: both SA lists show
#     AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384 and an
#     AES_GCM_16-256 CHILD_SA with crosswise SPIs; both kernels hold
#     rfc4106(gcm(aes)) SAs with a 288-bit key in tunnel mode; ICMP and a TCP
#     transfer (SHA-256 compared) pass, counted by the SAs of both sides and as
#     ESP on B's wire, no protected packet in clear.
#  2. Our teardown (SIGTERM on A: DELETE, B drops its side) leaves nothing of
#     ours in either kernel and charon's SAs and policies byte for byte as they
#     were; charon's tunnel still carries traffic. Control: without our tunnel
#     a ping crosses in clear and the wire counters see it (they can fail).
#  3. A again with GCM IKE only (--ike gcm): AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384
#     on both sides, traffic passes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
ike_init ikeo
ike_pki
ike_net_direct

# Everything in a namespace's SAD/SPD but ours: SA and policy blocks without
# a reqid of our range (0x6c000-0x7bfff) and not per-socket policies (each
# IKE daemon's sockets carry their own). No -s: no counters, no timestamps.
charon_objects() {
  { ip -n "$1" xfrm state; ip -n "$1" xfrm policy; } | awk '
    function flush() { if (blk != "" && !ours && !sock) printf "%s", blk; blk = ""; ours = 0; sock = 0 }
    /^[^ \t]/ { flush() }
    /anti-replay context/ { next }  # sequence numbers: traffic counters
    { blk = blk $0 "\n"
      if ($0 ~ /socket (in|out)/) sock = 1
      if (match($0, /reqid [0-9]+/)) { r = substr($0, RSTART + 6, RLENGTH - 6) + 0; if (r >= 442368 && r <= 507903) ours = 1 } }
    END { flush() }'
}

echo "== charon <-> charon on 198.18.1.0/24 <-> 198.18.2.0/24 (ports 1500/14500)"
charon_start ca "$A" 1500 14500
charon_start cb "$B" 1500 14500
charon_conf ca site-a 192.0.2.1 192.0.2.2 1500 "aes256-sha384-ecp384" 198.18.1.0/24 198.18.2.0/24 site-b.lab
charon_conf cb site-b 192.0.2.2 192.0.2.1 1500 "aes256-sha384-ecp384" 198.18.2.0/24 198.18.1.0/24 site-a.lab
charon_load ca; charon_load cb
swanctl_in cb --initiate --ike lab --child net --timeout 60 > "$W/cinit.out" 2>&1 \
  || fail "charon <-> charon: $(tail -5 "$W/cinit.out")"
charon_wait_established ca 10 || fail "charon A shows no CHILD_SA"
ping_from "$A" 198.18.1.1 198.18.2.1 || fail "no ping through charon's tunnel"
ok "charon <-> charon tunnel up"

echo "== 1. ours (A) initiator -> ours (B) responder, default suites"
ours_start b "$B" 192.0.2.2 192.0.2.1 203.0.113.0/24 198.51.100.0/24 site-b
ours_start a "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --initiate
wait_line a '^event child-up ' 60 || fail "A: no CHILD_SA"
wait_line b '^event child-up ' 10 || fail "B: no CHILD_SA"
check_pair() {  # check_pair IKE_SUITE TAG_A TAG_B: both SA lists, SPIs, kernels
  local sa_a sa_b ch_a ch_b st
  st=$(ours_status "$2"); echo "$st"; sa_a=$(grep '^sa ' <<<"$st"); ch_a=$(grep '^child ' <<<"$st")
  st=$(ours_status "$3"); echo "$st"; sa_b=$(grep '^sa ' <<<"$st"); ch_b=$(grep '^child ' <<<"$st")
  [ "$(field "$sa_a" role)/$(field "$sa_b" role)" = initiator/responder ] || fail "roles"
  for s in "$sa_a" "$sa_b"; do
    [ "$(field "$s" state)" = established ] || fail "not established: $s"
    [ "$(field "$s" ike)" = "$1" ] || fail "IKE suite $(field "$s" ike), want $1"
    [ "$(field "$s" nat)" = no ] || fail "NAT detected without a NAT"
  done
  [ "$(field "$sa_a" spi_i)/$(field "$sa_a" spi_r)" = "$(field "$sa_b" spi_i)/$(field "$sa_b" spi_r)" ] || fail "IKE SPIs differ"
  for c in "$ch_a" "$ch_b"; do
    [ "$(field "$c" esp)" = AES_GCM_16-256 ] || fail "CHILD_SA suite: $c"
    [ "$(field "$c" encap)" = none ] || fail "UDP encapsulation without a NAT: $c"
  done
  SPI_IN=$(field "$ch_a" spi_in) SPI_OUT=$(field "$ch_a" spi_out)
  [ "$(field "$ch_b" spi_in)/$(field "$ch_b" spi_out)" = "$SPI_OUT/$SPI_IN" ] || fail "CHILD_SA SPIs not crosswise"
  ok "IKE $1 and ESP AES_GCM_16-256 on both sides, SPIs crosswise"
  esp_sa "$A" 192.0.2.1 192.0.2.2 "$SPI_OUT"; esp_sa "$A" 192.0.2.2 192.0.2.1 "$SPI_IN"
  esp_sa "$B" 192.0.2.1 192.0.2.2 "$SPI_OUT"; esp_sa "$B" 192.0.2.2 192.0.2.1 "$SPI_IN"
  ok "both kernels: rfc4106(gcm(aes)), 288-bit key, 128-bit ICV, tunnel mode"
}
check_flow() { esp_flow "$1" esp 192.0.2.1 192.0.2.2 192.0.2.1 192.0.2.2; }  # check_flow PORT
check_pair AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384 a b
check_flow 5001

echo "== 2. our teardown leaves charon's objects alone"
before_a=$(charon_objects "$A") before_b=$(charon_objects "$B")
[ "$(grep -c '^src' <<<"$before_a")" -ge 5 ] || fail "charon's objects not found in A: $before_a"
ours_stop a
wait_line b '^event down ' 10 || fail "B did not see A's DELETE"
grep -q '^event down ' "$W/a.out" || fail "A: no down event"
no_ike_objects "$A"; no_ike_objects "$B"
ok "our SAs and policies gone from both kernels"
# Negative control for the wire counters: without our tunnel the same ping
# goes in clear, and B's counters must say so.
e0=$(wire esp) c0=$(wire cleartext)
ping_from "$A" 198.51.100.1 203.0.113.1 || fail "control ping in clear got no answer"
[ "$(wire cleartext)" -gt "$c0" ] || fail "the cleartext counter missed a ping in clear"
[ "$(wire esp)" = "$e0" ] || fail "ESP counted without a tunnel"
ok "control: without the tunnel a ping crosses in clear and B's wire counters see it"
[ "$(charon_objects "$A")" = "$before_a" ] || fail "charon's XFRM objects in A changed: $(diff <(echo "$before_a") <(charon_objects "$A"))"
[ "$(charon_objects "$B")" = "$before_b" ] || fail "charon's XFRM objects in B changed: $(diff <(echo "$before_b") <(charon_objects "$B"))"
charon_sas ca | grep -q "INSTALLED, TUNNEL" || fail "charon A lost its CHILD_SA"
ping_from "$A" 198.18.1.1 198.18.2.1 || fail "charon's tunnel no longer carries traffic"
ok "charon's SAs and policies untouched, its tunnel still carries traffic"

echo "== 3. ours <-> ours with GCM IKE (--ike gcm on A)"
ours_start a2 "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --initiate --ike gcm
wait_line a2 '^event child-up ' 60 || fail "A (gcm): no CHILD_SA"
wait_count b '^event child-up ' 2 10 || fail "B (gcm): no second CHILD_SA"
check_pair AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384 a2 b
check_flow 5002
ours_stop a2
ours_stop b
no_ike_objects "$A"; no_ike_objects "$B"
[ "$(charon_objects "$A")" = "$before_a" ] || fail "charon's XFRM objects in A changed: $(diff <(echo "$before_a") <(charon_objects "$A"))"
[ "$(charon_objects "$B")" = "$before_b" ] || fail "charon's XFRM objects in B changed: $(diff <(echo "$before_b") <(charon_objects "$B"))"
ok "charon's SAs and policies still untouched"
charon_stop ca; charon_stop cb
echo "IKE ours <-> ours OK"
