#!/bin/bash
# A committed policy list enforced between two namespaces through the
# storcrypt::policy installer and the netlink XFRM backend. Judged by the
# kernel itself: `ip xfrm` counters and /proc/net/xfrm_stat.
#
#   [pa] 192.0.2.1 va ---- veth ---- vb 192.0.2.2 [pb]
#
# List (on pa; pb imports the same file with --swap):
#   icmp-out/icmp-in  BYPASS ICMP
#   prot-out          PROTECT outbound TCP to remote ports 5000-5001 (SPI 0x1000)
#   prot-in           PROTECT inbound TCP from remote ports 5000-5001 (SPI 0x1001)
#   drop-7000         DISCARD outbound TCP to remote port 7000
#   out-all/in-all    BYPASS everything else
set -euo pipefail
CTL=${STORCRYPT_BUILD_DIR:?}/tests/vm/policy/storcrypt_policyctl
[ -x "$CTL" ] || { echo "FAIL: $CTL not built (cmake --build build --target storcrypt_policyctl)"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "== $*"; }

# shellcheck source=../lib/ipsec_net.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/ipsec_net.sh"
ipsec_net_init policy-vm

two_site_list "$W/list.txt"
(umask 077; echo "correct horse battery staple" > "$W/pass"; echo "wrong horse battery staple" > "$W/wrongpass")


serve 5000; serve 6000; serve 7000

step "test tool before commit"
"$CTL" test "$W/list.txt" TCP outbound 192.0.2.1 40000 192.0.2.2 1-65535 | tee "$W/test.out"
grep -q '^local 40000 remote 5000-5001: PROTECT by prot-out' "$W/test.out" || fail "test tool: 5000-5001 not PROTECT"
grep -q '^local 40000 remote 7000: DISCARD by drop-7000' "$W/test.out" || fail "test tool: 7000 not DISCARD"

step "keys: generate on pa, import on pb"
(cd "$W" && "$CTL" keys-new "$W/keys" "$W/pass" k-ab:AES-GCM-256 k-ba:AES-GCM-256)
[ "$(stat -c %a "$W/keys")" = 600 ] || fail "key file is not 0600"
grep -q 'scrypt' "$W/keys" || fail "key file has no KDF header"
if ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys" "$W/wrongpass" --swap > "$W/wrong.out" 2>&1; then
  fail "enable with a wrong passphrase succeeded"
fi
grep -q 'wrong passphrase' "$W/wrong.out" || fail "no wrong-passphrase message: $(cat "$W/wrong.out")"

step "a foreign policy that storcrypt must leave alone"
ip -n "$A" xfrm policy add src 203.0.113.1 dst 203.0.113.2 dir out priority 10 action allow

step "enable on both"
ip netns exec "$A" "$CTL" enable "$W/list.txt" "$W/keys" "$W/pass"
ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys" "$W/pass" --swap
ip -n "$A" xfrm state | grep 'rfc4106(gcm(aes))' > /dev/null || fail "SA with rfc4106(gcm(aes)) not installed on pa"
[ "$(ip -n "$A" xfrm state | grep -c '^src')" = 2 ] || fail "expected 2 SAs on pa"
ip -n "$A" xfrm policy | grep 'priority 1002' > /dev/null || fail "prot-out (priority 1002) not installed"
ip netns exec "$A" "$CTL" status "$W/list.txt" | tee "$W/status.a"
grep -q '^prot-out out PROTECT' "$W/status.a" || fail "status does not list prot-out"

step "ICMP bypass"
icmp_echo || fail "ICMP echo failed"

step "protected port 5000 flows as ESP"
o0=$(oseq "$A" 192.0.2.1 192.0.2.2 0x1000); i0=$(oseq "$B" 192.0.2.2 192.0.2.1 0x1001)
send 5000 || fail "TCP to protected port 5000 failed"
o1=$(oseq "$A" 192.0.2.1 192.0.2.2 0x1000); i1=$(oseq "$B" 192.0.2.2 192.0.2.1 0x1001)
echo "pa out SA oseq $o0 -> $o1; pb out SA oseq $i0 -> $i1"
[ $((o1 - o0)) -ge 40 ] || fail "outbound SA on pa did not count the transfer"
[ $((i1 - i0)) -ge 1 ] || fail "return traffic on pb did not use its SA"
ip netns exec "$A" "$CTL" status "$W/list.txt" | grep '^prot-out' | grep -v ' packets=0 ' > /dev/null || fail "status counters did not rise"

step "bypassed port 6000 flows in clear (no SA counter moves)"
send 6000 || fail "TCP to bypassed port 6000 failed"
o2=$(oseq "$A" 192.0.2.1 192.0.2.2 0x1000); i2=$(oseq "$B" 192.0.2.2 192.0.2.1 0x1001)
[ "$o2" = "$o1" ] || fail "SA counter moved for bypassed traffic ($o1 -> $o2)"
[ "$i2" = "$i1" ] || fail "pb SA counter moved for bypassed traffic"

step "discarded port 7000 is dropped by policy"
expect_discarded 7000

step "mismatched key on pb makes protected traffic fail"
ip netns exec "$B" "$CTL" disable
(cd "$W" && "$CTL" keys-new "$W/keys.other" "$W/pass" k-ab:AES-GCM-256 k-ba:AES-GCM-256 > /dev/null)
ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys.other" "$W/pass" --swap > /dev/null
if send 5000; then fail "protected traffic worked with mismatched keys"; fi
send 6000 || fail "bypassed traffic should still work with mismatched keys"
ip -s -n "$B" xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 > "$W/bad-sa"
sed -E "s/0x[0-9a-f]{32,}/<key>/g" "$W/bad-sa"  # no key material in the log
grep -Eq 'integrity-failed [1-9]' "$W/bad-sa" || echo "note: integrity-failed not reported by this iproute2"

step "the right key again restores it"
ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys" "$W/pass" --swap > /dev/null
send 5000 || fail "protected traffic failed after restoring the key"

step "disable removes exactly what was installed"
ip netns exec "$A" "$CTL" disable
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SAs left on pa after disable"
[ "$(ip -n "$A" xfrm policy | grep -c '^src')" = 1 ] || fail "pa should keep only the foreign policy"
ip -n "$A" xfrm policy | grep '203.0.113.1' > /dev/null || fail "the foreign policy was removed"
ip netns exec "$B" "$CTL" disable
send 5000 || fail "clear traffic after disabling both sides failed"
echo "policy two-namespace scenario OK"
