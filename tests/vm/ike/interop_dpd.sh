#!/bin/bash
# Dead peer detection (RFC 7296 §2.4) against charon with real ESP:
# ours (A, ikepeerctl --dpd 2 --dpd-restart, retransmissions 0.5/1/2/4 s)
# initiates to charon (B). charon is killed with SIGKILL and B's kernel
# state flushed (a peer that rebooted): A asks the silent peer, declares it
# dead ("considered dead") after its retransmissions, raises the down event,
# deletes its SAs and keeps its policies (restart policy): a protected ping is
# dropped meanwhile, nothing reaches B's wire in clear. A keeps trying;
# charon restarted -> A's new IKE SA comes up, its CHILD_SA takes the kept
# policies over in place (same indexes), and ICMP passes through it; charon
# shows its SPIs crosswise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
ike_init iked
ike_pki
ike_net_direct

charon_site_b() {  # charon_site_b TAG: charon in B as responder for A
  charon_start "$1" "$B" 500 4500
  charon_conf "$1" site-b 192.0.2.2 192.0.2.1 500 "aes256-sha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab
  charon_load "$1"
}
charon_site_b dpd1
ours_start a "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --initiate \
  --dpd 2 --dpd-restart --retransmit 500,1000,2000,4000
wait_line a '^event child-up ' 30 || fail "A: no CHILD_SA with charon"
charon_wait_established dpd1 10 || fail "charon shows no installed CHILD_SA"
ping_from "$A" 198.51.100.1 203.0.113.1 || fail "no ICMP through the first tunnel"
idx0=$(our_indexes "$A")
ok "tunnel up, ICMP passes"

kill -KILL "${CHARON_PID[dpd1]}"
ip -n "$B" xfrm state flush; ip -n "$B" xfrm policy flush
t0=$(date +%s)
# Silent for 2 s, then the INFORMATIONAL and its 4 retransmissions (0.5 + 1 + 2 + 4 s): a
# window long enough for the restarted charon to answer the first restart attempt.
wait_line a '^event down .*considered dead' 20 || fail "A did not declare charon dead within 20 s"
ok "A declared the peer dead after $(( $(date +%s) - t0 )) s: $(grep -m1 '^event down ' "$W/a.out" | sed 's/.*reason=//')"
for i in $(seq 20); do
  n=$(our_reqids "$A" state | grep -c . || true)
  [ "$n" = 0 ] && break
  sleep 0.25
done
[ "$n" = 0 ] || fail "A still holds $n SAs after declaring the peer dead"
[ "$(our_indexes "$A")" = "$idx0" ] || fail "A did not keep its 3 policies: $(our_indexes "$A") (were $idx0)"
c0=$(wire cleartext)
ping_from "$A" 198.51.100.1 203.0.113.1 && fail "a protected ping passed while the peer is dead"
[ "$(wire cleartext)" = "$c0" ] || fail "a protected ping left A in clear: $c0 -> $(wire cleartext)"
ok "A deleted its SAs and kept its policies: a protected ping is dropped, nothing in clear on B's wire"

charon_site_b dpd2
# The first restart attempt may fail while charon is away or still loading its
# configuration (NO_PROPOSAL_CHOSEN): the next one follows kRestartRetry (30 s) later.
wait_count a '^event child-up ' 2 75 || fail "A did not bring the tunnel back to the restarted charon"
charon_wait_established dpd2 10 || fail "the restarted charon shows no installed CHILD_SA"
ping_from "$A" 198.51.100.1 203.0.113.1 || fail "no ICMP through the restarted tunnel"
sas=$(charon_sas dpd2)
st=$(ours_status a); child=$(grep '^child ' <<<"$st")
cin=$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | head -1)
[ "$cin" = "$(field "$child" spi_out)" ] || fail "SPIs disagree after the restart: ours $child, charon in $cin"
[ "$(our_indexes "$A")" = "$idx0" ] || fail "the new CHILD_SA did not take the kept policies over: $(our_indexes "$A") (were $idx0)"
[ "$(our_reqids "$A" policy | sort -u)" = "$(our_reqids "$A" state | sort -u)" ] || fail "policies and SAs of different reqids"
ok "tunnel restarted by A after $(( $(date +%s) - t0 )) s, ICMP passes, SPIs agree"
ours_stop a
charon_stop dpd2
no_ike_objects "$A"
echo "IKE dead peer detection OK"
