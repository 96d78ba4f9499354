#!/bin/bash
# The ordered IPsec policy list through the daemon: two storcryptd instances,
# each in its own network namespace, driven only through the storcrypt
# command (policy import/test/commit, key create/export/import, ipsec
# enable/status/disable). Judged by the kernel: `ip xfrm` state and counters,
# /proc/net/xfrm_stat. A mismatched key must make protected traffic fail and
# raise event 2010; the right key again fixes it.
#
#   [A] 192.0.2.1 (storcryptd a) ---- veth ---- (storcryptd b) 192.0.2.2 [B]
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
D=$build/controller/storcryptd
C=$build/controller/storcrypt
declare -A DPID
# shellcheck source=../lib/ipsec_net.sh
source "$src/tests/vm/lib/ipsec_net.sh"

fail() {
  echo "FAIL: $*"
  for n in a b; do [ -f "$W/$n.log" ] && { echo "--- storcryptd $n log"; tail -30 "$W/$n.log"; }; done
  exit 1
}
step() { echo "== $*"; }
ipsec_net_extra_cleanup() { for p in "${DPID[@]}"; do kill "$p" 2>/dev/null || true; done; }

start_daemon() {  # start_daemon a|b NETNS
  mkdir -p "$W/$1"
  cat > "$W/$1/storcrypt.conf" <<EOF2
state_directory = $W/$1/state
socket_path = $W/$1/sock
log_level = info
EOF2
  rm -f "$W/$1/sock"
  STORCRYPT_IPSEC_WATCH_SECONDS=1 ip netns exec "$2" "$D" --config "$W/$1/storcrypt.conf" --foreground >> "$W/$1.log" 2>&1 &
  DPID[$1]=$!
  for _ in $(seq 100); do [ -S "$W/$1/sock" ] && return 0; sleep 0.1; done
  fail "storcryptd $1 did not start"
}
stop_daemon() { kill -TERM "${DPID[$1]}"; wait "${DPID[$1]}" || true; unset "DPID[$1]"; }
sc() { local n=$1; shift; echo "+ [$n] storcrypt $*" >&2; "$C" --socket "$W/$n/sock" "$@"; }
scj() { local n=$1; shift; "$C" --socket "$W/$n/sock" --json "$@"; }
# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }
unfixed_2010() { [ "$(scj b event list --code 2010 --unfixed | jq '.result.events | length')" -ge 1 ]; }
no_unfixed_2010() { [ "$(scj b event list --code 2010 --unfixed | jq '.result.events | length')" = 0 ]; }

ipsec_net_init ipsec-daemon
start_daemon a "$A"
start_daemon b "$B"

two_site_list "$W/list.txt"
(umask 077; echo "correct horse battery staple" > "$W/pass"; echo "wrong horse battery staple" > "$W/wrongpass")

serve 5000; serve 6000; serve 7000

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
sc a policy commit
sc a ipsec enable
ip -n "$A" xfrm state | grep 'rfc4106(gcm(aes))' > /dev/null || fail "no AES-GCM SA on A"
[ "$(ip -n "$A" xfrm state | grep -c '^src')" = 2 ] || fail "expected 2 SAs on A"

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

step "a foreign policy that storcrypt must leave alone"
ip -n "$A" xfrm policy add src 203.0.113.1 dst 203.0.113.2 dir out priority 10 action allow

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

step "B restarts after a reboot-like flush: the daemon enforces the committed list again"
stop_daemon b
ip -n "$B" xfrm state flush; ip -n "$B" xfrm policy flush
if send 5000; then echo "(clear traffic while B is unprotected is expected to fail: A still encrypts)"; fi
start_daemon b "$B"
wait_for 10 bash -c "ip -n $B xfrm state | grep '^src' > /dev/null" || fail "B's SAs not restored at start-up"
send 5000 || fail "protected traffic failed after B's restart"

step "disable removes exactly what was installed"
sc a ipsec disable
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SAs left on A after disable"
[ "$(ip -n "$A" xfrm policy | grep -c '^src')" = 1 ] || fail "A should keep only the foreign policy"
ip -n "$A" xfrm policy | grep '203.0.113.1' > /dev/null || fail "the foreign policy was removed"
sc b ipsec disable
send 5000 || fail "clear traffic after disabling both sides failed"
echo "ipsec daemon scenario OK"
