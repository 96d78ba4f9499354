#!/bin/bash
# Our IKEv2 (ikepeerctl over ike::Runner: real UDP, real XFRM) against
# strongSwan's charon with real ESP, both directions, two sites over a veth:
#  1. ours (A) initiates to charon (B) with the default suites: charon's
#     `swanctl --list-sas` shows AES_CBC-256/HMAC_SHA2_384_192/
#     PRF_HMAC_SHA2_384/ECP_384 and an AES_GCM_16-256 tunnel CHILD_SA whose
#     SPIs are ours crosswise; both kernels hold rfc4106(gcm(aes)) SAs with a
#     288-bit key in tunnel mode; ICMP and a TCP transfer (SHA-256 compared)
#     pass, counted by the SAs of both sides and as ESP on B's wire, with no
#     protected packet arriving in clear; our SIGTERM deletes the IKE SA and
#     charon drops its SAs too.
#  2. charon (B) initiates to ours (A) with GCM IKE configured
#     (aes256gcm16-prfsha384-ecp384): swanctl and our SA list both show
#     AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384; the same ESP checks; charon's
#     terminate removes our SAs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
ike_init ikec
ike_pki
ike_net_direct

# check_tunnel TAG CHARON ROLE: the CHILD_SA between ours (TAG in A) and charon (in B)
check_tunnel() {
  local tag=$1 ch=$2 st sa child sas in out cin cout
  st=$(ours_status "$tag"); echo "$st"
  sa=$(grep '^sa ' <<<"$st") child=$(grep '^child ' <<<"$st")
  [ "$(field "$sa" state)" = established ] || fail "our IKE SA is not established"
  [ "$(field "$sa" role)" = "$3" ] || fail "our role is $(field "$sa" role), want $3"
  [ "$(field "$sa" nat)" = no ] || fail "NAT detected without a NAT"
  [ "$(field "$child" esp)" = AES_GCM_16-256 ] || fail "our CHILD_SA suite: $(field "$child" esp)"
  in=$(field "$child" spi_in) out=$(field "$child" spi_out)
  sas=$(charon_sas "$ch"); echo "$sas"
  grep -q "ESTABLISHED, IKEv2" <<<"$sas" || fail "charon: IKE SA not ESTABLISHED"
  grep -q "INSTALLED, TUNNEL" <<<"$sas" || fail "charon: CHILD_SA not INSTALLED in tunnel mode"
  grep -q "ESP:AES_GCM_16-256" <<<"$sas" || fail "charon: CHILD_SA suite is not AES_GCM_16-256"
  cin=$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | head -1)
  cout=$(sed -n 's/^ *out *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | head -1)
  [ "$cin" = "$out" ] && [ "$cout" = "$in" ] || fail "SPIs disagree: ours in $in out $out, charon in $cin out $cout"
  ok "CHILD_SA SPIs agree: A in $in / out $out"
  esp_sa "$A" 192.0.2.1 192.0.2.2 "$out"; esp_sa "$A" 192.0.2.2 192.0.2.1 "$in"
  esp_sa "$B" 192.0.2.1 192.0.2.2 "$out"; esp_sa "$B" 192.0.2.2 192.0.2.1 "$in"
  ok "both kernels: rfc4106(gcm(aes)), 288-bit key, 128-bit ICV, tunnel mode"
  SPI_IN=$in SPI_OUT=$out
}
# check_traffic TAG PORT: ICMP + TCP through the tunnel, counted as ESP
check_traffic() {
  local tag=$1 st child
  esp_flow "$2" esp 192.0.2.1 192.0.2.2 192.0.2.1 192.0.2.2
  st=$(ours_status "$tag"); child=$(grep '^child ' <<<"$st")
  at_least "our CHILD_SA packets_out (Engine::list)" "$(field "$child" packets_out)" 10
  at_least "our CHILD_SA packets_in (Engine::list)" "$(field "$child" packets_in)" 6
}
charon_gone() {  # charon_gone TAG: no IKE SA in charon and no SA in B's kernel
  local i
  for i in $(seq 50); do
    if ! charon_sas "$1" | grep -q ESTABLISHED && [ -z "$(ip -n "$B" xfrm state)" ]; then return 0; fi
    sleep 0.2
  done
  return 1
}

echo "== 1. ours (A) initiator -> charon (B) responder, default suites"
charon_start site-b "$B" 500 4500
charon_conf site-b site-b 192.0.2.2 192.0.2.1 500 "aes256-sha384-ecp384, aes256gcm16-prfsha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab
charon_load site-b
ours_start a "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --initiate
wait_line a '^event child-up ' 60 || fail "no CHILD_SA with charon"
charon_wait_established site-b 10 || fail "charon shows no installed CHILD_SA"
grep -q '^event up ' "$W/a.out" || fail "no up event"
check_tunnel a site-b initiator
sa=$(grep '^sa ' <<<"$(ours_status a)")
[ "$(field "$sa" ike)" = AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384 ] || fail "our IKE suite: $(field "$sa" ike)"
charon_sas site-b | grep -q "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384" \
  || fail "charon's IKE SA is not AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"
ok "IKE suite AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384 on both sides"
check_traffic a 5001
ours_stop a
grep -q '^event down ' "$W/a.out" || fail "no down event after SIGTERM"
no_ike_objects "$A"
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SAs left in A after our teardown"
charon_gone site-b || fail "charon kept its SAs after our DELETE"
ok "our teardown: DELETE honoured by charon, nothing left in either kernel"

echo "== 2. charon (B) initiator -> ours (A) responder, GCM IKE configured"
charon_conf site-b site-b 192.0.2.2 192.0.2.1 500 aes256gcm16-prfsha384-ecp384 203.0.113.0/24 198.51.100.0/24 site-a.lab
charon_load site-b
ours_start a2 "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a
swanctl_in site-b --initiate --ike lab --child net --timeout 60 > "$W/initiate.out" 2>&1 \
  || fail "swanctl --initiate: $(tail -5 "$W/initiate.out")"
wait_line a2 '^event child-up ' 20 || fail "ours did not report the CHILD_SA"
check_tunnel a2 site-b responder
sa=$(grep '^sa ' <<<"$(ours_status a2)")
[ "$(field "$sa" ike)" = AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384 ] || fail "our IKE suite: $(field "$sa" ike)"
charon_sas site-b | grep -q "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384" \
  || fail "charon's IKE SA is not AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384"
ok "IKE suite AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384 on both sides"
check_traffic a2 5002
swanctl_in site-b --terminate --ike lab --timeout 30 > /dev/null || fail "swanctl --terminate failed"
wait_line a2 '^event down ' 10 || fail "ours did not see charon's DELETE"
no_ike_objects "$A"
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SAs left in A after charon's DELETE"
ok "charon's DELETE removed our SAs and policies"
ours_stop a2
charon_stop site-b
echo "IKE interop with charon OK"
