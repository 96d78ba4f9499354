#!/bin/bash
# CHILD_SA rekeys under traffic with real ESP (RFC 7296 §2.8, make-before-break:
# the new inbound SA before the answer, the outbound one after, the old SAs
# last, all under the CHILD_SA's reqid so its policies never change):
#  1. ours <-> ours: A rekeys its CHILD_SA every ~1 s (ECP-384 PFS) while a
#     100/s ICMP probe stream and back-to-back TCP transfers (SHA-256
#     compared) run A -> B. REKEYS rekeys (default 30; STORCRYPT_IKE_REKEYS=100
#     for the issue's full run): zero lost probes, every transfer intact, no
#     ESP packet for an SA a kernel lacks (XfrmInNoStates), no outbound packet
#     without an SA (XfrmOutNoStates), none sent into an SA deleted under it
#     (XfrmOutStateInvalid), no ICV failure (XfrmInStateProtoError),
#     then exactly one SA pair per side under the first reqid, policies as
#     they were.
# 1b. rekey collisions ours <-> ours (RFC 7296 §2.8.1): A and B rekey at once
#     with 100 ms of netem delay each way, so the requests cross; under the
#     same traffic checks each side reports one rekey per round (the nonce
#     rule's survivor) and most rounds are judged as collisions.
#  2. ours (A) rekeying against charon (B): the same checks; charon's list
#     shows one INSTALLED CHILD_SA whose SPIs are ours crosswise.
#  3. charon (B) rekeying (swanctl --rekey) against ours (A): the same.
#  4. IKE SA rekeys (RFC 7296 §1.3.2) with charon under the same traffic
#     checks, the CHILD_SA moving to the new IKE SA untouched: charon
#     initiating (swanctl --rekey --ike), then ours (--ike-rekey 3). After each
#     batch both sides hold exactly one IKE SA, with the same new SPIs, and
#     one CHILD_SA pair under the first reqid, policies as they were.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/interop_lib.sh"
ike_init iker
ike_pki
ike_net_direct
REKEYS=${STORCRYPT_IKE_REKEYS:-30}
CHARON_REKEYS=${STORCRYPT_IKE_CHARON_REKEYS:-10}
COLLISIONS=${STORCRYPT_IKE_COLLISIONS:-6}

kstats() {  # kstats: the XFRM error counters of both sides, one line
  local ns k
  for ns in "$A" "$B"; do
    for k in XfrmInNoStates XfrmOutNoStates XfrmOutStateInvalid XfrmInStateProtoError XfrmInStateSeqError; do
      printf '%s=%s ' "$k" "$(xfrm_stat "$ns" "$k")"
    done
  done
}
# tcp_loop PORT: 64 KiB TCP transfers A -> B back to back until $W/probe.stop;
# "transfers N bad M" in $W/tcp.out
tcp_loop() {
  serve "$1" 203.0.113.1
  ( n=0 bad=0
    head -c 65536 /dev/urandom > "$W/tcp.payload"
    while [ ! -e "$W/probe.stop" ]; do
      n=$((n + 1)); send_to 203.0.113.1 "$1" "$W/tcp.payload" || bad=$((bad + 1))
    done
    echo "transfers $n bad $bad" > "$W/tcp.out" ) &
  TCP_PID=$!
  PIDS+=($!)
}
# under_traffic PORT COUNT_CMD WANT: probes + TCP until COUNT_CMD prints >= WANT
under_traffic() {
  local port=$1 count_cmd=$2 want=$3 k0 k1 i r p
  k0=$(kstats)
  probe_start "$A" 198.51.100.1 203.0.113.1
  tcp_loop "$port"
  for i in $(seq 1200); do
    [ "$($count_cmd)" -ge "$want" ] && break
    sleep 0.25
  done
  [ "$($count_cmd)" -ge "$want" ] || { probe_stop || true; fail "only $($count_cmd) of $want rekeys in 300 s"; }
  sleep 1
  probe_stop
  r=$(cat "$W/probe.out")
  wait "$TCP_PID" || true
  echo "$r; $(cat "$W/tcp.out")"
  p=($r)
  [ "${p[1]}" -ge 100 ] || fail "too few probes sent: $r"
  [ "${p[1]}" = "${p[3]}" ] || fail "lost probes across $want rekeys: $r"
  ok "$want rekeys under a 100/s probe stream: ${p[1]} probes, none lost"
  grep -Eq '^transfers [1-9][0-9]* bad 0$' "$W/tcp.out" || fail "TCP transfers across the rekeys: $(cat "$W/tcp.out")"
  ok "TCP across the rekeys: $(cat "$W/tcp.out")"
  k1=$(kstats)
  [ "$k0" = "$k1" ] || fail "XFRM error counters moved: before $k0, after $k1"
  ok "XFRM error counters unchanged on both sides: $k1"
}
rekeyed() { grep -c '^event child-rekeyed ' "$W/$1.out" || true; }
# one_pair NS REQID: exactly two SAs of ours in NS, both under REQID, and the policies as in $W/pol.NS
# (after the superseded CHILD_SAs' inbound SAs, kept 5 s for packets in flight, are gone)
one_pair() {
  local sas reqids i
  for i in $(seq 40); do
    sas=$(ip -n "$1" xfrm state | grep -c '^src ' || true)
    [ "$sas" -le 2 ] && break
    sleep 0.25
  done
  [ "$sas" = 2 ] || fail "$1 holds $sas SAs 10 s after the rekeys, want 2"
  reqids=$(ip -n "$1" xfrm state | sed -n 's/.* reqid \([0-9]*\) .*/\1/p' | sort -u)
  [ "$reqids" = "$2" ] || fail "$1: SAs under reqid(s) $reqids, want $2"
  [ "$(policies "$1")" = "$(cat "$W/pol.$1")" ] || fail "$1: the rekeys changed the policies: $(policies "$1")"
  ok "$1: one SA pair under reqid $2, policies unchanged"
}
reqid_of() { ip -n "$1" xfrm state | sed -n 's/.* reqid \([0-9]*\) .*/\1/p' | head -1; }
# policies NS: the SPD without per-socket policies, one policy a line, sorted
# (re-putting the OUT policy at a rekey moves it in the dump order)
policies() {
  ip -n "$1" xfrm policy | awk '/^[^ \t]/ { if (b != "") print b; b = "" } { b = b $0 " " } END { if (b != "") print b }' \
    | grep -v 'socket ' | sort
}
save_policies() { local ns; for ns in "$@"; do policies "$ns" > "$W/pol.$ns"; done; }

# drive_rekeys TAG N: N rekeys of TAG's CHILD_SA (SIGUSR2), one after the
# other: the next once TAG reported the last and its old SAs had 0.5 s to go.
drive_rekeys() {
  local tag=$1 n=$2 i j
  ( for i in $(seq "$n"); do
      kill -USR2 "${OURS_PID[$tag]}"
      for j in $(seq 80); do [ "$(rekeyed "$tag")" -ge "$i" ] && break; sleep 0.125; done
      sleep 0.5
    done ) &
  PIDS+=($!)
}

echo "== 1. ours <-> ours: $REKEYS rekeys by A (ECP-384 PFS) under traffic"
ours_start b "$B" 192.0.2.2 192.0.2.1 203.0.113.0/24 198.51.100.0/24 site-b --pfs
ours_start a "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --pfs --initiate
wait_line a '^event child-up ' 60 || fail "A: no CHILD_SA"
wait_line b '^event child-up ' 10 || fail "B: no CHILD_SA"
ra=$(reqid_of "$A") rb=$(reqid_of "$B")
save_policies "$A" "$B"
drive_rekeys a "$REKEYS"
a_rekeys() { rekeyed a; }
under_traffic 5101 a_rekeys "$REKEYS"
wait_count b '^event child-rekeyed ' "$REKEYS" 5 || fail "B reported fewer rekeys than A: $(rekeyed b)"
ok "B reported every rekey ($(rekeyed b))"
grep -q '^rekey-refused' "$W/a.out" && fail "A refused a rekey: $(grep '^rekey-refused' "$W/a.out" | head -1)"
one_pair "$A" "$ra"; one_pair "$B" "$rb"

echo "== 1b. ours <-> ours: $COLLISIONS rekey collisions (both sides rekey at once, 100 ms each way) under traffic"
modprobe sch_netem 2>/dev/null || true
tc -n "$A" qdisc add dev va root netem delay 100ms
tc -n "$B" qdisc add dev vb root netem delay 100ms
a0=$(rekeyed a) b0=$(rekeyed b)
collided() {  # rounds both sides have reported
  local a=$(( $(rekeyed a) - a0 )) b=$(( $(rekeyed b) - b0 ))
  echo $(( a < b ? a : b ))
}
( for i in $(seq "$COLLISIONS"); do
    kill -USR2 "${OURS_PID[a]}" "${OURS_PID[b]}"
    for j in $(seq 80); do [ "$(collided)" -ge "$i" ] && break; sleep 0.125; done
    sleep 1
  done ) &
PIDS+=($!)
under_traffic 5104 collided "$COLLISIONS"
sleep 1
[ "$(rekeyed a)" = $((a0 + COLLISIONS)) ] && [ "$(rekeyed b)" = $((b0 + COLLISIONS)) ] \
  || fail "want one rekey per side per round: A $(( $(rekeyed a) - a0 )), B $(( $(rekeyed b) - b0 ))"
ca=$(grep -c '^event child-rekeyed .*rekey collision' "$W/a.out" || true)
cb=$(grep -c '^event child-rekeyed .*rekey collision' "$W/b.out" || true)
[ "$ca" -ge $((COLLISIONS / 2)) ] && [ "$cb" -ge $((COLLISIONS / 2)) ] \
  || fail "the rekeys did not cross: collisions judged A $ca, B $cb of $COLLISIONS"
grep -q '^rekey-refused' "$W/b.out" && fail "B refused a rekey: $(grep '^rekey-refused' "$W/b.out" | head -1)"
ok "collisions judged by the nonce rule: A $ca, B $cb of $COLLISIONS rounds, one rekey reported per side and round"
tc -n "$A" qdisc del dev va root; tc -n "$B" qdisc del dev vb root
one_pair "$A" "$ra"; one_pair "$B" "$rb"
ours_stop a
wait_line b '^event down ' 10 || fail "B saw no DELETE"
ours_stop b
no_ike_objects "$A"; no_ike_objects "$B"

echo "== 2. ours (A) rekeys against charon (B), ECP-384 PFS"
charon_start site-b "$B" 500 4500
charon_conf site-b site-b 192.0.2.2 192.0.2.1 500 "aes256-sha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab aes256gcm16-ecp384
charon_load site-b
ours_start a "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --pfs --child-rekey 2 --initiate
wait_line a '^event child-up ' 60 || fail "no CHILD_SA with charon"
charon_wait_established site-b 10 || fail "charon shows no installed CHILD_SA"
save_policies "$A"
under_traffic 5102 a_rekeys "$CHARON_REKEYS"
ours_stop a
charon_stop site-b
no_ike_objects "$A"

echo "== 3. charon (B) rekeys against ours (A): swanctl --rekey, ECP-384 PFS"
charon_start site-b3 "$B" 500 4500
charon_conf site-b3 site-b 192.0.2.2 192.0.2.1 500 "aes256-sha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab aes256gcm16-ecp384
charon_load site-b3
ours_start a3 "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --pfs --initiate
wait_line a3 '^event child-up ' 60 || fail "no CHILD_SA with charon"
charon_wait_established site-b3 10 || fail "charon shows no installed CHILD_SA"
ra=$(reqid_of "$A")
save_policies "$A"
rm -f "$W/probe.stop"  # scenario 2's: it would end the loop below before its first rekey
( for i in $(seq "$CHARON_REKEYS"); do
    [ -e "$W/probe.stop" ] && break
    swanctl_in site-b3 --rekey --child net > /dev/null 2>&1 || true
    n0=$i; for j in $(seq 40); do [ "$(rekeyed a3)" -ge "$n0" ] && break; sleep 0.25; done
    sleep 1
  done ) &
PIDS+=($!)
a3_rekeys() { rekeyed a3; }
under_traffic 5103 a3_rekeys "$CHARON_REKEYS"
sleep 2  # charon's DELETE of the last old CHILD_SA
one_pair "$A" "$ra"
sas=$(charon_sas site-b3); echo "$sas"
[ "$(grep -c 'INSTALLED, TUNNEL' <<<"$sas")" = 1 ] || fail "charon holds other than one installed CHILD_SA"
st=$(ours_status a3); child=$(grep '^child ' <<<"$st")
cin=$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | head -1)
cout=$(sed -n 's/^ *out *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | head -1)
[ "$cin" = "$(field "$child" spi_out)" ] && [ "$cout" = "$(field "$child" spi_in)" ] \
  || fail "SPIs disagree after the rekeys: ours $child, charon in $cin out $cout"
ok "after $CHARON_REKEYS charon rekeys: one CHILD_SA on both sides, SPIs crosswise"
ours_stop a3
charon_stop site-b3

IKE_SA_REKEYS=${STORCRYPT_IKE_SA_REKEYS:-3}
ike_rekeyed() { grep -c '^event ike-rekeyed ' "$W/$1.out" || true; }
# ike_sa_agrees TAG CHARON OLD_SPI_I: TAG lists one IKE SA (the old ones are gone), charon one with the same
# SPIs, neither the one whose initiator SPI was OLD_SPI_I; one CHILD_SA, SPIs crosswise
ike_sa_agrees() {
  local l sas si sr i good=no
  for i in $(seq 20); do  # (ours --ike-rekey keeps rekeying: compare two listings taken between rekeys)
    l=$(ours_listing "$1"); sas=$(charon_sas "$2" || true)
    si=$(field "$(grep '^sa ' <<<"$l" | head -1)" spi_i); sr=$(field "$(grep '^sa ' <<<"$l" | head -1)" spi_r)
    if [ "$(grep -c '^sa ' <<<"$l")" = 1 ] && [ "$(grep -c 'ESTABLISHED, IKEv2' <<<"$sas")" = 1 ] &&
      grep -q "${si}_i\*\? ${sr}_r" <<<"$sas"; then good=yes; break; fi
    sleep 0.5
  done
  echo "$l"; echo "$sas"
  [ "$(grep -c '^sa ' <<<"$l")" = 1 ] || fail "$1 lists other than one IKE SA after the IKE rekeys"
  [ "$(grep -c 'ESTABLISHED, IKEv2' <<<"$sas")" = 1 ] || fail "charon holds other than one IKE SA"
  [ "$good" = yes ] || fail "charon's IKE SA is not ours ($si/$sr)"
  [ "$si" != "$3" ] || fail "$1's IKE SA was not rekeyed"
  grep -q "$3" <<<"$sas" && fail "charon still lists the old IKE SA $3"
  [ "$(grep -c 'INSTALLED, TUNNEL' <<<"$sas")" = 1 ] || fail "charon holds other than one installed CHILD_SA"
  [ "$(grep -c '^child ' <<<"$l")" = 1 ] || fail "$1 lists other than one CHILD_SA"
  ok "one IKE SA on both sides, SPIs ${si}_i ${sr}_r, one CHILD_SA"
}
echo "== 4. IKE SA rekeys with charon: $IKE_SA_REKEYS by charon (swanctl --rekey --ike), then $IKE_SA_REKEYS by ours"
charon_start site-b4 "$B" 500 4500
charon_conf site-b4 site-b 192.0.2.2 192.0.2.1 500 "aes256-sha384-ecp384" 203.0.113.0/24 198.51.100.0/24 site-a.lab aes256gcm16-ecp384
charon_load site-b4
ours_start a4 "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --pfs --initiate
wait_line a4 '^event child-up ' 60 || fail "no CHILD_SA with charon"
charon_wait_established site-b4 10 || fail "charon shows no installed CHILD_SA"
ra=$(reqid_of "$A")
save_policies "$A"
old=$(field "$(ours_listing a4 | grep '^sa ')" spi_i)
rm -f "$W/probe.stop"
( for i in $(seq "$IKE_SA_REKEYS"); do
    [ -e "$W/probe.stop" ] && break
    swanctl_in site-b4 --rekey --ike lab > /dev/null 2>&1 || true
    for j in $(seq 40); do [ "$(ike_rekeyed a4)" -ge "$i" ] && break; sleep 0.25; done
    sleep 1
  done ) &
PIDS+=($!)
a4_ike() { ike_rekeyed a4; }
under_traffic 5105 a4_ike "$IKE_SA_REKEYS"
grep -q '^event \(down\|child-down\|ike-rekey-failed\) ' "$W/a4.out" && fail "A: $(grep -m1 '^event \(down\|child-down\|ike-rekey-failed\) ' "$W/a4.out")"
grep '^event ike-rekeyed ' "$W/a4.out" | tail -1
ike_sa_agrees a4 site-b4 "$old"
one_pair "$A" "$ra"
ours_stop a4
no_ike_objects "$A"
# ours initiating: an IKE rekey ~3 s after each IKE SA came up
ours_start a5 "$A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 site-a --pfs --initiate --ike-rekey 3
wait_line a5 '^event child-up ' 60 || fail "no CHILD_SA with charon"
ra=$(reqid_of "$A")
save_policies "$A"
old=$(field "$(ours_listing a5 | grep '^sa ')" spi_i)
rm -f "$W/probe.stop"
a5_ike() { ike_rekeyed a5; }
under_traffic 5106 a5_ike "$IKE_SA_REKEYS"
grep -q '^event \(down\|child-down\|ike-rekey-failed\) ' "$W/a5.out" && fail "A: $(grep -m1 '^event \(down\|child-down\|ike-rekey-failed\) ' "$W/a5.out")"
ike_sa_agrees a5 site-b4 "$old"
one_pair "$A" "$ra"
ours_stop a5
charon_stop site-b4
no_ike_objects "$A"
echo "IKE CHILD_SA rekeys under traffic OK"
