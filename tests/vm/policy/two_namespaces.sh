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
# Then a second list carries AH (port 5000) and tunnel-mode ESP (port 6000)
# end to end; a tampered key of one breaks only that flow.
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
step "AH and tunnel-mode ESP end to end (second list)"
# ah-out/ah-in      PROTECT TCP to/from remote port 5000 with AH (HMAC-SHA-256-128), SPIs 0x2000/0x2001
# tun-out/tun-in    PROTECT TCP to/from remote port 6000 with tunnel-mode ESP (AES-CBC-256 + HMAC-SHA-256-128)
#                   between the endpoints 192.0.2.1 and 192.0.2.2, SPIs 0x3000/0x3001
# everything else   BYPASS (port 7000 flows in clear)
modprobe -a ah4 authenc cbc hmac sha256_generic 2>/dev/null || true
protect_pair() {  # NAME PORT SPI_OUT SPI_IN FIELDS (with KEYDIR standing for ab/ba)
  local name=$1 port=$2 so=$3 si=$4 fields=$5 dir spi key
  for dir in out in; do
    if [ $dir = out ]; then spi=$so; key=ab; else spi=$si; key=ba; fi
    printf 'Name = %s-%s\nDirection = %sbound\nLocalAddress = 192.0.2.1\nRemoteAddress = 192.0.2.2\nProtocol = TCP\nRemotePort = %s\nAction = PROTECT\nSPI = %s\n%s\n\n' \
      "$name" "$dir" "$dir" "$port" "$spi" "${fields//KEYDIR/$key}"
  done
}
{
  printf 'Name = icmp-out\nDirection = outbound\nProtocol = ICMP\nAction = BYPASS\n\n'
  printf 'Name = icmp-in\nDirection = inbound\nProtocol = ICMP\nAction = BYPASS\n\n'
  protect_pair ah 5000 0x2000 0x2001 $'Service = AH\nMode = transport\nIntegrityAlgorithm = HMAC-SHA-256-128\nIntegrityKey = ah-KEYDIR'
  protect_pair tun 6000 0x3000 0x3001 $'Service = ESP-INTEGRITY-CONFIDENTIALITY\nMode = tunnel\nLocalEndpoint = 192.0.2.1\nRemoteEndpoint = 192.0.2.2\nEncryptionAlgorithm = AES-CBC-256\nEncryptionKey = tun-KEYDIR\nIntegrityAlgorithm = HMAC-SHA-256-128\nIntegrityKey = tunmac-KEYDIR'
  printf 'Name = out-all\nDirection = outbound\nAction = BYPASS\n\nName = in-all\nDirection = inbound\nAction = BYPASS\n'
} > "$W/list2.txt"
# bad-ah-*: other values, for the tampered-key checks below.
(cd "$W" && "$CTL" keys-new "$W/keys2" "$W/pass" ah-ab:HMAC-SHA-256-128 ah-ba:HMAC-SHA-256-128 \
  tun-ab:AES-CBC-256 tun-ba:AES-CBC-256 tunmac-ab:HMAC-SHA-256-128 tunmac-ba:HMAC-SHA-256-128 \
  bad-ah-ab:HMAC-SHA-256-128 bad-ah-ba:HMAC-SHA-256-128 bad-tun-ab:AES-CBC-256 bad-tun-ba:AES-CBC-256 > /dev/null)
ip netns exec "$A" "$CTL" enable "$W/list2.txt" "$W/keys2" "$W/pass"
ip netns exec "$B" "$CTL" enable "$W/list2.txt" "$W/keys2" "$W/pass" --swap
ip -n "$A" xfrm state > "$W/state2.a"
sed -E "s/0x[0-9a-f]{16,}/<key>/g" "$W/state2.a"  # the kernel's own view, keys masked
grep -q 'proto ah spi 0x00002000' "$W/state2.a" || fail "AH SA 0x2000 not installed on pa"
grep -q 'auth-trunc hmac(sha256)' "$W/state2.a" || fail "AH/ESP SA without hmac(sha256) on pa"
grep -q 'proto esp spi 0x00003000' "$W/state2.a" || fail "tunnel SA 0x3000 not installed on pa"
grep -q 'mode tunnel' "$W/state2.a" || fail "no tunnel-mode SA on pa"
grep -q 'enc cbc(aes)' "$W/state2.a" || fail "tunnel SA without cbc(aes) on pa"
[ "$(grep -c '^src' "$W/state2.a")" = 4 ] || fail "expected 4 SAs on pa (AH and tunnel, both directions)"
seqof() {  # seqof NS SRC DST PROTO SPI -> outbound sequence number
  local v; v=$(ip -s -n "$1" xfrm state get src "$2" dst "$3" proto "$4" spi "$5" | sed -n 's/.*oseq 0x\([0-9a-f]*\).*/\1/p' | head -1)
  echo $((16#${v:-0}))
}
ah0=$(seqof "$A" 192.0.2.1 192.0.2.2 ah 0x2000); tu0=$(seqof "$A" 192.0.2.1 192.0.2.2 esp 0x3000)
send 5000 || fail "TCP to the AH-protected port 5000 failed"
ah1=$(seqof "$A" 192.0.2.1 192.0.2.2 ah 0x2000)
[ $((ah1 - ah0)) -ge 40 ] || fail "the AH SA did not count the transfer ($ah0 -> $ah1)"
send 6000 || fail "TCP to the tunnel-protected port 6000 failed"
tu1=$(seqof "$A" 192.0.2.1 192.0.2.2 esp 0x3000)
[ $((tu1 - tu0)) -ge 40 ] || fail "the tunnel SA did not count the transfer ($tu0 -> $tu1)"
[ "$(seqof "$B" 192.0.2.2 192.0.2.1 ah 0x2001)" -ge 1 ] || fail "return traffic on pb did not use its AH SA"
[ "$(seqof "$B" 192.0.2.2 192.0.2.1 esp 0x3001)" -ge 1 ] || fail "return traffic on pb did not use its tunnel SA"
send 7000 || fail "TCP to the bypassed port 7000 failed"
[ "$(seqof "$A" 192.0.2.1 192.0.2.2 ah 0x2000)" = "$ah1" ] || fail "the AH SA counted bypassed traffic"

step "a tampered AH key breaks only the AH flow"
sed 's/^IntegrityKey = ah-/IntegrityKey = bad-ah-/' "$W/list2.txt" > "$W/list2.bad-ah"
ip netns exec "$B" "$CTL" enable "$W/list2.bad-ah" "$W/keys2" "$W/pass" --swap > /dev/null
if send 5000; then fail "AH-protected traffic worked with a tampered AH key"; fi
send 6000 || fail "tunnel traffic broke with only the AH key tampered"
send 7000 || fail "bypassed traffic broke with the AH key tampered"

step "a tampered tunnel key breaks only the tunnel flow"
sed 's/^EncryptionKey = tun-/EncryptionKey = bad-tun-/' "$W/list2.txt" > "$W/list2.bad-tun"
ip netns exec "$B" "$CTL" enable "$W/list2.bad-tun" "$W/keys2" "$W/pass" --swap > /dev/null
if send 6000; then fail "tunnel traffic worked with a tampered tunnel key"; fi
send 5000 || fail "AH traffic broke with only the tunnel key tampered"
send 7000 || fail "bypassed traffic broke with the tunnel key tampered"

step "the right keys again, then disable"
ip netns exec "$B" "$CTL" enable "$W/list2.txt" "$W/keys2" "$W/pass" --swap > /dev/null
send 5000 || fail "AH traffic failed after restoring the key"
send 6000 || fail "tunnel traffic failed after restoring the key"
ip netns exec "$A" "$CTL" disable
ip netns exec "$B" "$CTL" disable
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SAs left on pa after disable"
echo "policy two-namespace scenario OK"
