#!/bin/bash
# Restart after SIGKILL (issue 15 "Restart") against charon with real ESP:
# ours (A) initiates to charon (B), then A is killed with SIGKILL: its SAs and
# policies stay in A's kernel and nobody owns them. A stale policy of a peer
# that is no longer configured is planted next to them (our index and reqid
# ranges, another tunnel end). The new instance, before it negotiates:
#  - deleted the dead instance's SAs and kept its policies, so a ping of the
#    protected selectors is dropped: not answered, not seen in clear on B's
#    wire (nor as ESP);
#  - pruned the planted policy of the unconfigured peer.
# Then it initiates (INITIAL_CONTACT): charon drops the old IKE SA and keeps
# exactly one, whose CHILD_SA's SPIs are ours crosswise; A's kernel holds
# exactly the new CHILD_SA (2 SAs, 3 policies, which took over the stale
# policies' indexes) and ICMP passes. Teardown leaves nothing of ours.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
ike_init iker
ike_pki
ike_net_direct

count() { grep -c . <<<"$1" || true; }

charon_start rs "$B" 500 4500
charon_conf rs site-b 192.0.2.2 192.0.2.1 500 "aes256-sha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab
charon_load rs
ours_start a "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --initiate
wait_line a '^event child-up ' 30 || fail "A: no CHILD_SA with charon"
charon_wait_established rs 10 || fail "charon shows no installed CHILD_SA"
ping_from "$A" 198.51.100.1 203.0.113.1 || fail "no ICMP through the first tunnel"
old_child=$(grep '^child ' <<<"$(ours_status a)")
old_in=$(field "$old_child" spi_in)
ok "tunnel up, ICMP passes (CHILD_SA SPIs in $old_in out $(field "$old_child" spi_out))"

echo "== SIGKILL: the dead instance's objects stay in A's kernel"
kill -KILL "${OURS_PID[a]}"
wait "${OURS_PID[a]}" 2>/dev/null || true
sas=$(our_reqids "$A" state) pols=$(our_reqids "$A" policy)
[ "$(count "$sas")" = 2 ] || fail "A should still hold the dead instance's 2 SAs: $sas"
[ "$(count "$pols")" = 3 ] || fail "A should still hold the dead instance's 3 policies: $pols"
old_reqid=$(head -1 <<<"$pols")
old_idx=$(our_indexes "$A")
# A policy of our ranges for a peer that is not configured (192.0.2.99).
ip -n "$A" xfrm policy add src 10.99.1.0/24 dst 10.99.2.0/24 dir out index $((0xf8fff001)) priority 5000 \
  tmpl src 192.0.2.1 dst 192.0.2.99 proto esp reqid $((0x6cfff)) mode tunnel
ok "2 SAs and 3 policies of reqid $old_reqid left behind; a stale policy for 192.0.2.99 planted"

echo "== the new instance, before it negotiates"
ours_start a2 "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a
line=$(grep -m1 '^stale ' "$W/a2.out") || fail "a2 printed no stale line"
[ "$line" = "stale sas_deleted=2 policies_kept=4 policies_pruned=1" ] || fail "start-up: $line"
[ -z "$(our_reqids "$A" state)" ] || fail "the dead instance's SAs are still there: $(our_reqids "$A" state)"
[ "$(our_reqids "$A" policy | sort -u)" = "$old_reqid" ] || fail "policies: $(our_reqids "$A" policy)"
ip -n "$A" xfrm policy | grep -q '192.0.2.99' && fail "the unconfigured peer's stale policy was not pruned"
ok "$line: its SAs gone, its 3 policies kept, the other peer's pruned"
e0=$(wire esp) c0=$(wire cleartext)
ping_from "$A" 198.51.100.1 203.0.113.1 && fail "a protected ping passed without any SA"
[ "$(wire cleartext)" = "$c0" ] || fail "a protected ping left A in clear: $c0 -> $(wire cleartext)"
[ "$(wire esp)" = "$e0" ] || fail "ESP left A without an SA"
ok "meanwhile the protected ping is dropped: not answered, nothing in clear or as ESP on B's wire"

echo "== it initiates: INITIAL_CONTACT, charon keeps one IKE SA"
kill -HUP "${OURS_PID[a2]}"
wait_line a2 '^event child-up ' 30 || fail "a2: no CHILD_SA after SIGHUP: $(tail -3 "$W/a2.out")"
for i in $(seq 50); do
  n=$(charon_sas rs | grep -c 'ESTABLISHED' || true)
  [ "$n" = 1 ] && break
  sleep 0.2
done
[ "$n" = 1 ] || fail "charon holds $n IKE SAs after INITIAL_CONTACT: $(charon_sas rs)"
child=$(grep '^child ' <<<"$(ours_status a2)")
[ "$(field "$child" spi_in)" != "$old_in" ] || fail "a2 reports the old CHILD_SA"
cin=$(charon_sas rs | sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' | head -1)
[ "$cin" = "$(field "$child" spi_out)" ] || fail "SPIs disagree: ours $child, charon in $cin"
[ "$(charon_sas rs | grep -c 'INSTALLED, TUNNEL' || true)" = 1 ] || fail "charon holds more than one CHILD_SA: $(charon_sas rs)"
ok "charon replaced the old IKE SA, one CHILD_SA with our SPIs crosswise"
sas=$(our_reqids "$A" state) pols=$(our_reqids "$A" policy)
[ "$(count "$sas")" = 2 ] && [ "$(count "$pols")" = 3 ] || fail "A: SAs $sas policies $pols"
[ "$(sort -u <<<"$pols")" = "$(sort -u <<<"$sas")" ] && [ "$(sort -u <<<"$pols")" != "$old_reqid" ] \
  || fail "A's policies do not carry the new CHILD_SA's reqid: $pols / $sas"
new_idx=$(our_indexes "$A")
[ "$new_idx" = "$old_idx" ] || fail "policy indexes: $old_idx -> $new_idx (the stale ones should be taken over)"
ping_from "$A" 198.51.100.1 203.0.113.1 || fail "no ICMP through the new tunnel"
[ "$(wire esp)" -gt "$e0" ] || fail "no ESP on B's wire"
ok "A holds exactly the new CHILD_SA (stale policies taken over in place), ICMP passes as ESP"

ours_stop a2
no_ike_objects "$A"
charon_stop rs
echo "IKE restart OK"
