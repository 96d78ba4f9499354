#!/bin/bash
# NAT between the sites: A (192.0.2.1) sits behind N, whose nftables
# masquerade hides it behind 192.0.2.129 and maps A's UDP 500 to 1500 and 4500
# to 14500; B (192.0.2.130) sees only that address and never a port A chose.
#  1. ours (A) initiates to charon (B): both sides detect the NAT (our SA list
#     nat=yes; charon's vici nat-remote=yes), IKE moves to UDP 4500 (our
#     endpoints :4500, charon's remote is the NAT's mapping 192.0.2.129:14500),
#     both kernels' SAs carry `encap type espinudp` (A 4500/4500, B 4500/14500),
#     ICMP and TCP pass, counted by the SAs and as ESP-in-UDP on B's wire with
#     no bare ESP and no protected packet in clear.
#  2. ours <-> ours the same way (B is ours, answering the NATed initiator).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
ike_init iken
ike_pki
ike_net_nat

# check_nat_flow A_SPI_IN A_SPI_OUT B_REMOTE_PORT PORT: SAs encapsulated,
# traffic through, counted.
check_nat_flow() {
  local in=$1 out=$2 mport=$3 s e0
  s=$(esp_sa "$A" 192.0.2.1 192.0.2.130 "$out"); echo "$s"
  grep -q "encap type espinudp sport 4500 dport 4500" <<<"$s" || fail "A's outbound SA is not ESP-in-UDP 4500/4500"
  s=$(esp_sa "$A" 192.0.2.130 192.0.2.1 "$in")
  grep -q "encap type espinudp sport 4500 dport 4500" <<<"$s" || fail "A's inbound SA is not ESP-in-UDP 4500/4500"
  s=$(esp_sa "$B" 192.0.2.130 192.0.2.129 "$in"); echo "$s"
  grep -q "encap type espinudp sport 4500 dport $mport" <<<"$s" || fail "B's outbound SA is not ESP-in-UDP 4500/$mport"
  s=$(esp_sa "$B" 192.0.2.129 192.0.2.130 "$out")
  grep -q "encap type espinudp sport $mport dport 4500" <<<"$s" || fail "B's inbound SA is not ESP-in-UDP $mport/4500"
  ok "both kernels: ESP-in-UDP (A 4500/4500, B 4500/$mport), rfc4106(gcm(aes)) 288-bit, tunnel mode"
  e0=$(wire esp)
  SPI_IN=$in SPI_OUT=$out esp_flow "$4" espinudp 192.0.2.1 192.0.2.130 192.0.2.129 192.0.2.130
  [ "$(wire esp)" = "$e0" ] || fail "bare ESP through the NAT: $(wire esp) (was $e0)"
  ok "no bare ESP on B's wire"
}
mapped_port() {  # the NAT's mapping of A's 4500 (conntrack in N)
  ip netns exec "$N" cat /proc/net/nf_conntrack 2>/dev/null \
    | sed -n 's/.*src=192\.0\.2\.1 dst=192\.0\.2\.130 sport=4500 dport=4500 .*src=192\.0\.2\.130 dst=192\.0\.2\.129 sport=4500 dport=\([0-9]*\).*/\1/p' | head -1
}

echo "== 1. ours (A, behind NAT) initiator -> charon (B) responder"
charon_start site-b "$B" 500 4500
charon_conf site-b site-b 192.0.2.130 192.0.2.129 500 "aes256-sha384-ecp384, aes256gcm16-prfsha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab
charon_load site-b
ours_start a "$A" 192.0.2.1 192.0.2.130 198.51.100.0/24 203.0.113.0/24 site-a --initiate
wait_line a '^event child-up ' 60 || fail "no CHILD_SA with charon through the NAT"
charon_wait_established site-b 10 || fail "charon shows no installed CHILD_SA"
st=$(ours_status a); echo "$st"
sa=$(grep '^sa ' <<<"$st") child=$(grep '^child ' <<<"$st")
[ "$(field "$sa" nat)" = yes ] || fail "we did not detect the NAT"
[ "$(field "$sa" local)" = 192.0.2.1:4500 ] && [ "$(field "$sa" remote)" = 192.0.2.130:4500 ] \
  || fail "our IKE SA did not move to 4500: $(field "$sa" local) -> $(field "$sa" remote)"
[ "$(field "$child" encap)" = 4500/4500 ] || fail "our CHILD_SA is not UDP-encapsulated 4500/4500"
raw=$(swanctl_in site-b --list-sas --raw)
grep -q "nat-remote=yes" <<<"$raw" || fail "charon did not detect the NAT: $raw"
sas=$(charon_sas site-b); echo "$sas"
mport=$(sed -n "s/.*remote .* @ 192\.0\.2\.129\[\([0-9]*\)\].*/\1/p" <<<"$sas" | head -1)
[ "$mport" = 14500 ] || fail "charon's remote endpoint is not the NAT's mapping of 4500 (14500): $sas"
ct=$(mapped_port)
[ -z "$ct" ] || [ "$ct" = 14500 ] || fail "the NAT mapped 4500 to $ct, not 14500"
ok "both sides detected the NAT; IKE on 4500 (charon sees 192.0.2.129:$mport)"
check_nat_flow "$(field "$child" spi_in)" "$(field "$child" spi_out)" "$mport" 5001
ours_stop a
no_ike_objects "$A"
for _ in $(seq 50); do [ -z "$(ip -n "$B" xfrm state)" ] && break; sleep 0.2; done
[ -z "$(ip -n "$B" xfrm state)" ] || fail "charon kept its SAs after our DELETE through the NAT"
ok "teardown through the NAT"
charon_stop site-b

echo "== 2. ours (A, behind NAT) initiator -> ours (B) responder"
ours_start b "$B" 192.0.2.130 192.0.2.129 203.0.113.0/24 198.51.100.0/24 site-b
ours_start a2 "$A" 192.0.2.1 192.0.2.130 198.51.100.0/24 203.0.113.0/24 site-a --initiate
wait_line a2 '^event child-up ' 60 || fail "A: no CHILD_SA through the NAT"
wait_line b '^event child-up ' 10 || fail "B: no CHILD_SA"
st=$(ours_status a2); echo "$st"
sa_a=$(grep '^sa ' <<<"$st") ch_a=$(grep '^child ' <<<"$st")
st=$(ours_status b); echo "$st"
sa_b=$(grep '^sa ' <<<"$st") ch_b=$(grep '^child ' <<<"$st")
[ "$(field "$sa_a" nat)/$(field "$sa_b" nat)" = yes/yes ] || fail "NAT detection: A $(field "$sa_a" nat), B $(field "$sa_b" nat)"
[ "$(field "$sa_a" local)" = 192.0.2.1:4500 ] && [ "$(field "$sa_a" remote)" = 192.0.2.130:4500 ] \
  || fail "A's IKE SA did not move to 4500"
mport=$(field "$sa_b" remote); mport=${mport##*:}
[ "$(field "$sa_b" local)" = 192.0.2.130:4500 ] && [ "$(field "$sa_b" remote)" = "192.0.2.129:$mport" ] \
  || fail "B's IKE SA: $(field "$sa_b" local) -> $(field "$sa_b" remote)"
[ "$mport" = 14500 ] || fail "B talks to the NAT's port $mport, not its mapping of 4500 (14500)"
[ "$(field "$ch_a" encap)" = 4500/4500 ] || fail "A's CHILD_SA encap: $(field "$ch_a" encap)"
[ "$(field "$ch_b" encap)" = "4500/$mport" ] || fail "B's CHILD_SA encap: $(field "$ch_b" encap), want 4500/$mport"
[ "$(field "$ch_b" spi_in)/$(field "$ch_b" spi_out)" = "$(field "$ch_a" spi_out)/$(field "$ch_a" spi_in)" ] \
  || fail "CHILD_SA SPIs not crosswise"
ok "both detected the NAT; IKE on 4500, B answers 192.0.2.129:$mport"
check_nat_flow "$(field "$ch_a" spi_in)" "$(field "$ch_a" spi_out)" "$mport" 5002
ours_stop a2
wait_line b '^event down ' 10 || fail "B did not see A's DELETE through the NAT"
no_ike_objects "$A"; no_ike_objects "$B"
ours_stop b
echo "IKE through NAT OK"
