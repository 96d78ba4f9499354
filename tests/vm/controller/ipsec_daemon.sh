#!/bin/bash
# The ordered IPsec policy list through the daemon: two storcryptd instances,
# each in its own network namespace, driven only through the storcrypt
# command (policy import/test/commit, key create/export/import, ipsec
# enable/status/disable). Judged by the kernel: `ip xfrm` state and counters,
# /proc/net/xfrm_stat. A mismatched key must make protected traffic fail and
# raise event 2010; the right key again fixes it. A key replace killed with
# SIGKILL at each journalled step settles at the restart with the kernel and
# the key file in agreement.
#
# Another IPsec daemon shares the kernel (issue 13): strongSwan's charon
# (charon-systemd with a swanctl connection, PSK, one instance per namespace)
# keys an ESP tunnel 10.1.0.0/24 (A) <-> 10.2.0.0/24 (B) over the same outer
# addresses. storcrypt's enable, a daemon restart (reconcile) and disable
# leave charon's policies and SAs byte for byte as they were (`ip xfrm`,
# traffic counters aside); commit warns while the list's catch-all BYPASS
# shadows the tunnel, and once the list leaves that traffic alone under a
# DENY default the tunnel carries it while the list is enforced.
#
#   [A] 192.0.2.1 (storcryptd a) ---- veth ---- (storcryptd b) 192.0.2.2 [B]
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
D=$build/controller/storcryptd
C=$build/controller/storcrypt
declare -A DPID CPID
# shellcheck source=../lib/ipsec_net.sh
source "$src/tests/vm/lib/ipsec_net.sh"

fail() {
  echo "FAIL: $*"
  for n in a b; do [ -f "$W/$n.log" ] && { echo "--- storcryptd $n log"; tail -30 "$W/$n.log"; }; done
  exit 1
}
step() { echo "== $*"; }
ipsec_net_extra_cleanup() { for p in "${DPID[@]}" "${CPID[@]}"; do kill "$p" 2>/dev/null || true; done; }

start_daemon() {  # start_daemon a|b NETNS [KIND:POINT: pause there (the journal's test-only hook)]
  mkdir -p "$W/$1"
  cat > "$W/$1/storcrypt.conf" <<EOF2
state_directory = $W/$1/state
socket_path = $W/$1/sock
log_level = info
EOF2
  rm -f "$W/$1/sock" "$W/$1/paused"
  STORCRYPT_PAUSE_AT=${3:-} STORCRYPT_PAUSE_FILE="$W/$1/paused" STORCRYPT_IPSEC_WATCH_SECONDS=1 \
    ip netns exec "$2" "$D" --config "$W/$1/storcrypt.conf" --foreground >> "$W/$1.log" 2>&1 &
  DPID[$1]=$!
  for _ in $(seq 100); do [ -S "$W/$1/sock" ] && return 0; sleep 0.1; done
  fail "storcryptd $1 did not start"
}
stop_daemon() { kill -TERM "${DPID[$1]}"; wait "${DPID[$1]}" || true; unset "DPID[$1]"; }
# kill_paused a|b KIND:POINT: wait until the daemon says it paused there, then SIGKILL it from outside.
kill_paused() {
  for _ in $(seq 600); do
    [ -s "$W/$1/paused" ] && break
    kill -0 "${DPID[$1]}" 2>/dev/null || fail "storcryptd $1 ended before pausing at $2"
    sleep 0.1
  done
  [ "$(cat "$W/$1/paused" 2>/dev/null)" = "$2" ] || fail "storcryptd $1 did not pause at $2 ($(cat "$W/$1/paused" 2>/dev/null))"
  kill -9 "${DPID[$1]}"
  local rc=0
  wait "${DPID[$1]}" || rc=$?
  unset "DPID[$1]"
  [ "$rc" = 137 ] || fail "storcryptd $1 paused at $2 ended with status $rc, not by SIGKILL"
}
sc() { local n=$1; shift; echo "+ [$n] storcrypt $*" >&2; "$C" --socket "$W/$n/sock" "$@"; }
scj() { local n=$1; shift; "$C" --socket "$W/$n/sock" --json "$@"; }
# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }
# ---- the other daemon: strongSwan's charon, one per namespace ----
command -v charon-systemd > /dev/null && command -v swanctl > /dev/null \
  || fail "charon-systemd/swanctl missing: run scripts/setup.sh"
charon_net() {  # charon_net NS INNER REMOTE_INNER_NET OUTER_PEER: inner address and route
  ip -n "$1" addr add "$2/32" dev lo
  ip -n "$1" route add "$3" via "$4" src "$2"
}
charon_start() {  # charon_start a|b NS LOCAL REMOTE LOCAL_NET REMOTE_NET
  local d=$W/charon-$1
  mkdir -p "$d"
  cat > "$d/strongswan.conf" <<EOF2
charon-systemd {
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    vici { socket = unix://$d/vici }
  }
  install_routes = no
  journal { default = -1 }
  filelog { log { path = $d/charon.log
                  default = 1
                  flush_line = yes } }
}
swanctl { socket = unix://$d/vici }
EOF2
  cat > "$d/swanctl.conf" <<EOF2
connections { site {
  version = 2
  local_addrs = $3
  remote_addrs = $4
  proposals = aes256gcm16-prfsha384-ecp384
  local { auth = psk
          id = $3 }
  remote { auth = psk
           id = $4 }
  children { net { local_ts = $5
                   remote_ts = $6
                   esp_proposals = aes128gcm16
                   mode = tunnel
                   start_action = none } }
} }
secrets { ike-1 { id-1 = $3
                  id-2 = $4
                  secret = "vm-test-only-psk-not-a-secret" } }
EOF2
  STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$2" charon-systemd > "$d/stdout" 2>&1 &
  CPID[$1]=$!
  for _ in $(seq 100); do [ -S "$d/vici" ] && break; sleep 0.1; done
  [ -S "$d/vici" ] || fail "charon in $2 did not start: $(cat "$d/stdout" "$d/charon.log" 2>/dev/null | tail -5)"
  STRONGSWAN_CONF=$d/strongswan.conf swanctl --load-all --file "$d/swanctl.conf" > "$d/swanctl-load.log" 2>&1 \
    || fail "swanctl could not load charon $1's connection"
}
swan() { local n=$1; shift; STRONGSWAN_CONF=$W/charon-$n/strongswan.conf swanctl "$@"; }
charon_up() {  # A initiates the tunnel and both sides install it
  swan a --initiate --ike site --child net > "$W/charon-initiate.log" 2>&1 \
    || { tail -5 "$W/charon-initiate.log"; tail -20 "$W/charon-b/charon.log"; fail "charon could not establish the tunnel"; }
}
charon_down() { swan a --terminate --ike site > /dev/null 2>&1 || true; sleep 1; }
# charon's outbound SA on A (reqid outside storcrypt's range), SPI as `ip xfrm` prints it
charon_spi() {
  ip -n "$A" xfrm state list src 192.0.2.1 dst 192.0.2.2 | awk '/reqid/ {for(i=1;i<NF;i++){if($i=="spi")s=$(i+1); if($i=="reqid")r=$(i+1)}; if (r<376832 || r>507903) print s}' | head -1
}
# The other daemons' objects (every policy whose index lacks storcrypt's tag,
# every SA whose reqid is outside its range) as `ip xfrm` prints them, without
# the counters and times that traffic moves.
foreign_xfrm() {  # foreign_xfrm NS
  ip -s -n "$1" xfrm policy | awk '
    function flush() { if (blk != "" && idx < 4026531840) printf "%s", blk; blk = ""; idx = 0 }
    /^src/ { flush() }
    /lifetime current:/ { skip = 2; next }
    skip > 0 { skip--; next }
    { for (i = 1; i < NF; i++) if ($i == "index") idx = $(i + 1); blk = blk $0 "\n" }
    END { flush() }'
  ip -n "$1" xfrm state | awk '
    function flush() { if (blk != "" && (r < 376832 || r > 507903)) printf "%s", blk; blk = ""; r = 0 }
    /^src/ { flush() }
    /anti-replay/ { next }
    { for (i = 1; i < NF; i++) if ($i == "reqid") r = $(i + 1); blk = blk $0 "\n" }
    END { flush() }'
}
# expect_foreign_unchanged NS SNAPSHOT WHEN
expect_foreign_unchanged() {
  foreign_xfrm "$1" > "$W/foreign.now"
  if ! cmp -s "$2" "$W/foreign.now"; then
    diff "$2" "$W/foreign.now" | sed -E 's/0x[0-9a-f]{32,}/<key>/g'
    fail "the other daemon's policies or SAs in $1 changed $3"
  fi
}
# Traffic 10.1.0.1 -> 10.2.0.1 through charon's tunnel: its SA on A counts it.
tunnel_carries() {
  local spi o0 o1; spi=$(charon_spi)
  [ -n "$spi" ] || { echo "charon has no outbound SA on A"; return 1; }
  o0=$(oseq "$A" 192.0.2.1 192.0.2.2 "$spi")
  send_to 10.2.0.1 5100 || return 1
  o1=$(oseq "$A" 192.0.2.1 192.0.2.2 "$spi")
  echo "charon's SA $spi on A: oseq $o0 -> $o1"
  [ $((o1 - o0)) -ge 40 ]
}
# Policies storcrypt owns: index in 0xf0000000-0xffffffff (its ownership tag).
# SAs storcrypt owns: reqid in 0x5c000-0x7bfff.
own_sas() { ip -n "$1" xfrm state | awk '{for(i=1;i<NF;i++) if($i=="reqid" && $(i+1)>=376832 && $(i+1)<=507903) n++} END{print n+0}'; }
own_policies() { ip -s -n "$1" xfrm policy | awk '/ index /{for(i=1;i<=NF;i++) if($i=="index" && $(i+1) >= 4026531840) n++} END{print n+0}'; }

unfixed_2010() { [ "$(scj b event list --code 2010 --unfixed | jq '.result.events | length')" -ge 1 ]; }
no_unfixed_2010() { [ "$(scj b event list --code 2010 --unfixed | jq '.result.events | length')" = 0 ]; }

ipsec_net_init ipsec-daemon
start_daemon a "$A"
start_daemon b "$B"

two_site_list "$W/list.txt"
(umask 077; echo "correct horse battery staple" > "$W/pass"; echo "wrong horse battery staple" > "$W/wrongpass")

serve 5000; serve 6000; serve 7000

step "strongSwan's charon keys a tunnel that carries traffic before storcrypt is enabled"
charon_net "$A" 10.1.0.1 10.2.0.0/24 192.0.2.2
charon_net "$B" 10.2.0.1 10.1.0.0/24 192.0.2.1
charon_start a "$A" 192.0.2.1 192.0.2.2 10.1.0.0/24 10.2.0.0/24
charon_start b "$B" 192.0.2.2 192.0.2.1 10.2.0.0/24 10.1.0.0/24
charon_up
# and a policy of a third party at a priority above every list entry
ip -n "$A" xfrm policy add src 203.0.113.1 dst 203.0.113.2 dir out priority 10 action allow
serve 5100 10.2.0.1
tunnel_carries || fail "charon's tunnel does not carry traffic"
foreign_xfrm "$A" > "$W/foreign.a"; foreign_xfrm "$B" > "$W/foreign.b"
[ "$(grep -c '^src' "$W/foreign.a")" -ge 6 ] || fail "expected charon's 3+ policies and 2 SAs and the priority-10 policy on A: $(cat "$W/foreign.a")"
CHARON_PRIO=$(ip -n "$A" xfrm policy list src 10.1.0.0/24 dst 10.2.0.0/24 dir out | sed -n 's/.* priority \([0-9]*\).*/\1/p' | head -1)
[ -n "$CHARON_PRIO" ] || fail "charon installed no outbound policy on A"
FOREIGN_POLICIES_A=$(ip -n "$A" xfrm policy | grep -c '^src'); FOREIGN_SAS_A=$(ip -n "$A" xfrm state | grep -c '^src')

step "A: import the list, test it, keys, commit, enable"
sc a policy import "$W/list.txt"
sc a policy test --direction outbound --protocol TCP --local 192.0.2.1 --remote 192.0.2.2 --remote-port 1-65535 | tee "$W/test.out"
grep -q 'remote 5000-5001: PROTECT by prot-out' "$W/test.out" || fail "test tool: 5000-5001 not PROTECT"
grep -q 'remote 7000: DISCARD by drop-7000' "$W/test.out" || fail "test tool: 7000 not DISCARD"
if sc a policy commit 2> "$W/commit.err"; then fail "commit without the keys succeeded"; fi
grep -q "key 'k-ab' does not exist" "$W/commit.err" || fail "commit error does not name the missing key: $(cat "$W/commit.err")"
sc a key create k-ab --algorithm AES-GCM-256
sc a key create k-ba --algorithm AES-GCM-256
sc a key list | tee "$W/keys.list"
grep -Eq '^k-ab +AES-GCM-256 +36 +prot-out' "$W/keys.list" || fail "key list does not show k-ab used by prot-out"
[ "$(stat -c %a "$W/a/state/ipsec-keys")" = 600 ] || fail "the daemon's key store is not 0600"
scj a policy commit > "$W/commit.json"
jq -r '.result.diagnostics[] | select(.policy == "out-all") | .message' "$W/commit.json" | tee "$W/shadow.msg"
grep -q 'another IPsec daemon' "$W/shadow.msg" || fail "commit did not warn that out-all shadows the other daemon's tunnel"
grep -q "priority $CHARON_PRIO" "$W/shadow.msg" || fail "the shadow warning does not name charon's policy (priority $CHARON_PRIO)"
sc a ipsec enable
ip -n "$A" xfrm state | grep 'rfc4106(gcm(aes))' > /dev/null || fail "no AES-GCM SA on A"
[ "$(own_sas "$A")" = 2 ] || fail "expected 2 SAs of storcrypt (reqid tag) on A"
[ "$(ip -n "$A" xfrm state | grep -c '^src')" = $((FOREIGN_SAS_A + 2)) ] || fail "expected 2 SAs of storcrypt and $FOREIGN_SAS_A of charon on A"
[ "$(own_policies "$A")" -ge 5 ] || fail "storcrypt's policies on A do not carry its index tag"
expect_foreign_unchanged "$A" "$W/foreign.a" "by storcrypt's enable"

step "keys: export on A (0600, no key values in it), import on B"
sc a key export "$W/keys.scx" --passphrase-file "$W/pass"
[ "$(stat -c %a "$W/keys.scx")" = 600 ] || fail "exported key file is not 0600"
grep -q '^kdf = scrypt' "$W/keys.scx" || fail "key file has no scrypt header"
for spi in 0x00001000 0x00001001; do
  keyhex=$(ip -n "$A" xfrm state get src 192.0.2.$([ $spi = 0x00001000 ] && echo 1 || echo 2) dst 192.0.2.$([ $spi = 0x00001000 ] && echo 2 || echo 1) proto esp spi $spi | sed -n 's/.*aead rfc4106(gcm(aes)) 0x\([0-9a-f]*\).*/\1/p')
  [ ${#keyhex} = 72 ] || fail "could not read the SA key of $spi from the kernel"
  grep -qi "$keyhex" "$W/keys.scx" && fail "the key value appears in the exported file"
  grep -qi "$keyhex" "$W/a.log" && fail "the key value appears in the daemon log"
done
if sc b key import "$W/keys.scx" --passphrase-file "$W/wrongpass" 2> "$W/wrong.err"; then fail "import with a wrong passphrase succeeded"; fi
grep -q 'wrong passphrase' "$W/wrong.err" || fail "no wrong-passphrase message: $(cat "$W/wrong.err")"
sc b key import "$W/keys.scx" --passphrase-file "$W/pass"
sc b policy import "$W/list.txt" --swap
sc b policy commit
sc b ipsec enable
expect_foreign_unchanged "$B" "$W/foreign.b" "by storcrypt's enable"

step "the list's catch-all BYPASS takes precedence over the other daemon's tunnel (as commit warned)"
if tunnel_carries; then fail "the tunnel carried traffic that out-all (priority 100x) decides"; fi

step "ICMP bypass"
icmp_echo || fail "ICMP echo failed"

step "protected port 5000 flows as ESP"
o0=$(oseq "$A" 192.0.2.1 192.0.2.2 0x1000)
send 5000 || fail "TCP to protected port 5000 failed"
o1=$(oseq "$A" 192.0.2.1 192.0.2.2 0x1000)
echo "A out SA oseq $o0 -> $o1"
[ $((o1 - o0)) -ge 40 ] || fail "outbound SA on A did not count the transfer"
sc a ipsec status | tee "$W/status.a"
pk=$(scj a ipsec status | jq '[.result.policies[] | select(.name == "prot-out") | .sa.packets] | max')
[ "${pk:-0}" -ge 40 ] || fail "ipsec status: prot-out SA packets $pk (kernel oseq $o1)"

step "bypassed port 6000 flows in clear (no SA counter moves)"
send 6000 || fail "TCP to bypassed port 6000 failed"
[ "$(oseq "$A" 192.0.2.1 192.0.2.2 0x1000)" = "$o1" ] || fail "SA counter moved for bypassed traffic"

step "discarded port 7000 is dropped by policy"
expect_discarded 7000
kb=$(scj a ipsec status | jq '.result.kernel_counters.XfrmOutPolBlock')
[ "${kb:-0}" -ge "$POLBLOCK" ] || fail "ipsec status reports XfrmOutPolBlock=$kb, the kernel $POLBLOCK"
sc a ipsec status | grep "XfrmOutPolBlock=$kb" > /dev/null || fail "human ipsec status does not show the policy drops"

step "a mismatched key on B: protected traffic fails and event 2010 is raised"
no_unfixed_2010 || fail "event 2010 raised before any mismatch"
sc b key create k-ab --algorithm AES-GCM-256 --replace
if send 5000; then fail "protected traffic worked with mismatched keys"; fi
send 6000 || fail "bypassed traffic should still work with mismatched keys"
ip -s -n "$B" xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 | tee "$W/bad-sa"
wait_for 10 unfixed_2010 || fail "no event 2010 on B after integrity failures"
scj b event list --code 2010 | jq -r '.result.events[0].message' | tee "$W/ev.msg"
grep -q 'prot-out' "$W/ev.msg" || fail "event 2010 does not name the policy (B's inbound prot-out after --swap)"
sc b system doctor > /dev/null || true

step "the right key again: traffic flows and the event is marked fixed"
sc b key import "$W/keys.scx" --passphrase-file "$W/pass" --replace
send 5000 || fail "protected traffic failed after importing the right key"
wait_for 10 no_unfixed_2010 || { send 5000 || true; wait_for 10 no_unfixed_2010 || fail "event 2010 not marked fixed"; }

step "a key replace on B killed with SIGKILL at each step: after the restart the kernel, the key file and the journal agree"
# The journalled change (ipsec.keys): begin -> kernel-applied (the SAs carry
# the new key) -> written (key file replaced) -> saved -> done. Before
# "written" the old key stands (rolled back); from it on the new one (done).
b_kernel_key() {
  ip -n "$B" xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 \
    | sed -n 's/.*aead rfc4106(gcm(aes)) 0x\([0-9a-f]*\).*/\1/p'
}
b_file_key() { awk '$1 == "k-ab" {print tolower($3)}' "$W/b/state/ipsec-keys"; }
b_journal() { sqlite3 "$W/b/state/storcrypt.db" "SELECT state FROM journal_ops WHERE kind = 'ipsec.keys' ORDER BY id DESC LIMIT 1"; }
good_key=$(b_file_key)
[ "$(b_kernel_key)" = "$good_key" ] || fail "before the crashes B's kernel key is not its file's"
for p in begin:rolled-back kernel-applied:rolled-back written:done saved:done done:done; do
  point=${p%%:*}; want=${p##*:}
  stop_daemon b
  start_daemon b "$B" "ipsec.keys:$point"
  "$C" --socket "$W/b/sock" key create k-ab --algorithm AES-GCM-256 --replace > /dev/null 2>&1 &
  cli=$!
  kill_paused b "ipsec.keys:$point"
  wait "$cli" || true  # the daemon died under it
  start_daemon b "$B"
  [ "$(b_journal)" = "$want" ] || fail "key replace killed at $point: journal says '$(b_journal)', want $want"
  [ -n "$(b_kernel_key)" ] || fail "key replace killed at $point: B has no SA 0x1000 after the restart"
  [ "$(b_kernel_key)" = "$(b_file_key)" ] || fail "key replace killed at $point: B's kernel and key file disagree"
  if [ "$want" = done ]; then
    [ "$(b_file_key)" != "$good_key" ] || fail "key replace killed at $point: the new key was lost"
    sc b key import "$W/keys.scx" --passphrase-file "$W/pass" --replace > /dev/null
  else
    [ "$(b_file_key)" = "$good_key" ] || fail "key replace killed at $point: a key the change never stored is in use"
  fi
  [ "$(b_kernel_key)" = "$good_key" ] || fail "B's key not back to A's after $point"
  echo "killed at ipsec.keys:$point -> $want, kernel = key file"
done
send 5000 || fail "protected traffic failed after the killed key replaces"

step "B restarts after a reboot-like flush: the daemon enforces the committed list again"
stop_daemon b
ip -n "$B" xfrm state flush; ip -n "$B" xfrm policy flush
if send 5000; then echo "(clear traffic while B is unprotected is expected to fail: A still encrypts)"; fi
start_daemon b "$B"
wait_for 10 bash -c "ip -n $B xfrm state | grep '^src' > /dev/null" || fail "B's SAs not restored at start-up"
send 5000 || fail "protected traffic failed after B's restart"
# The flush took charon's objects on B too: charon brings its tunnel up again
# (new SPIs on both sides), and the snapshots start over.
charon_down; charon_up
foreign_xfrm "$A" > "$W/foreign.a"; foreign_xfrm "$B" > "$W/foreign.b"

step "A restarts without a flush: the reconcile leaves the other daemon's objects alone"
stop_daemon a
start_daemon a "$A"
send 5000 || fail "protected traffic failed after A's restart"
expect_foreign_unchanged "$A" "$W/foreign.a" "by the reconcile at A's restart"
[ "$(ip -n "$A" xfrm state | grep -c '^src')" = $((FOREIGN_SAS_A + 2)) ] || fail "A's restart changed the SAs"

step "the list leaves the tunnel's traffic alone under DENY: the other daemon's tunnel carries it while enforced"
for n in a b; do
  sc "$n" policy remove out-all
  sc "$n" policy remove in-all
  sc "$n" ipsec default DENY
  scj "$n" policy commit > "$W/commit2.json"
  # icmp-* and drop-7000 still name some of the tunnel's traffic (ICMP, TCP port 7000): they still warn.
  jq -r '.result.diagnostics[] | select(.policy == "icmp-out" or .policy == "icmp-in") | .message' \
    "$W/commit2.json" | grep -q 'another IPsec daemon' || fail "commit on $n no longer warns about icmp-*"
  if jq -r '.result.diagnostics[] | select(.policy == "out-all" or .policy == "in-all" or .policy == "")
      | .message' "$W/commit2.json" | grep -q 'another IPsec daemon'; then
    fail "commit on $n still warns about a removed catch-all or the default: $(jq -c '.result.diagnostics' "$W/commit2.json")"
  fi
done
tunnel_carries || fail "the other daemon's tunnel does not carry its traffic under storcrypt's DENY default"
send 5000 || fail "protected traffic failed under DENY"
if send 6000; then fail "unnamed clear traffic got through under DENY"; fi
expect_foreign_unchanged "$A" "$W/foreign.a" "by the DENY default"
expect_foreign_unchanged "$B" "$W/foreign.b" "by the DENY default"

step "disable removes exactly what was installed"
sc a ipsec disable
[ "$(own_sas "$A")" = 0 ] || fail "storcrypt SAs left on A after disable"
[ "$(ip -n "$A" xfrm state | grep -c '^src')" = "$FOREIGN_SAS_A" ] || fail "A should keep only charon's $FOREIGN_SAS_A SAs"
[ "$(ip -n "$A" xfrm policy | grep -c '^src')" = "$FOREIGN_POLICIES_A" ] || fail "A should keep only the other daemons' $FOREIGN_POLICIES_A policies"
[ "$(own_policies "$A")" = 0 ] || fail "storcrypt policies left on A"
expect_foreign_unchanged "$A" "$W/foreign.a" "by storcrypt's disable"
sc b ipsec disable
[ "$(own_policies "$B")" = 0 ] || fail "storcrypt policies left on B"
expect_foreign_unchanged "$B" "$W/foreign.b" "by storcrypt's disable"
send 5000 || fail "clear traffic after disabling both sides failed"
tunnel_carries || fail "the other daemon's tunnel stopped carrying traffic after storcrypt's disable"
echo "ipsec daemon scenario OK"
