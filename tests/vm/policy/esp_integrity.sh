#!/bin/bash
# Service = ESP-INTEGRITY (ESP with integrity only, RFC 4303 NULL encryption)
# enforced between two namespaces through the storcrypt::policy installer and
# the netlink XFRM backend. Judged by the kernel and the wire: `ip xfrm state`
# (enc ecb(cipher_null) without key, counters), /proc/net/xfrm_stat, and a
# packet capture on the peer showing ESP packets that carry the payload in clear.
#
#   [pa] 192.0.2.1 va ---- veth ---- vb 192.0.2.2 [pb]
#
# List (on pa; pb imports the same file with --swap):
#   integ-out  PROTECT outbound TCP to remote port 5201, ESP-INTEGRITY HMAC-SHA-256-128 (SPI 0x2000)
#   integ-in   PROTECT inbound TCP from remote port 5201, ESP-INTEGRITY HMAC-SHA-256-128 (SPI 0x2001)
#   out-all/in-all BYPASS everything else
set -euo pipefail
CTL=${STORCRYPT_BUILD_DIR:?}/tests/vm/policy/storcrypt_policyctl
[ -x "$CTL" ] || { echo "FAIL: $CTL not built (cmake --build build --target storcrypt_policyctl)"; exit 1; }
modprobe -a authenc hmac sha256_generic 2>/dev/null || true
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "== $*"; }

W=$(mktemp -d /tmp/espnull-vm.XXXXXX)
A=espn-a-$$; B=espn-b-$$
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
# shellcheck source=../lib/ipsec_net.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/ipsec_net.sh"
ipsec_net_up

cat > "$W/list.txt" <<'LIST'
Name = integ-out
Direction = outbound
LocalAddress = 192.0.2.1
RemoteAddress = 192.0.2.2
Protocol = TCP
RemotePort = 5201
Action = PROTECT
Service = ESP-INTEGRITY
Mode = transport
SPI = 0x2000
IntegrityAlgorithm = HMAC-SHA-256-128
IntegrityKey = k-ab

Name = integ-in
Direction = inbound
LocalAddress = 192.0.2.1
RemoteAddress = 192.0.2.2
Protocol = TCP
RemotePort = 5201
Action = PROTECT
Service = ESP-INTEGRITY
Mode = transport
SPI = 0x2001
IntegrityAlgorithm = HMAC-SHA-256-128
IntegrityKey = k-ba

Name = out-all
Direction = outbound
Action = BYPASS

Name = in-all
Direction = inbound
Action = BYPASS
LIST
(umask 077; echo "correct horse battery staple" > "$W/pass")

# Payload: a recognisable text, so the capture can find it in clear inside ESP.
MARKER="STORCRYPT-ESP-INTEGRITY-CLEARTEXT"
/usr/bin/python3 -c 'import sys; sys.stdout.write("".join("%s-%06d\n" % (sys.argv[1], i) for i in range(1600)))' "$MARKER" > "$W/payload"
WANT=$(sha256sum < "$W/payload" | cut -d' ' -f1)

# A TCP server on pb: reads to EOF, answers with the SHA-256.
ip netns exec "$B" /usr/bin/python3 -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", 5201)); s.listen(8)
while True:
    c, _ = s.accept(); c.settimeout(10); h = hashlib.sha256()
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            h.update(b)
        c.sendall(h.hexdigest().encode())
    except OSError:
        pass
    c.close()
' > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$B" ss -ltn > "$W/ss" && grep -q ':5201 ' "$W/ss" && break; sleep 0.1; done

# send: the payload from pa to port 5201; succeeds iff the digest comes back intact.
send() {
  local got
  got=$(ip netns exec "$A" timeout 15 /usr/bin/python3 -c '
import socket, sys
c = socket.create_connection(("192.0.2.2", 5201), timeout=5)
c.settimeout(5)
c.sendall(open(sys.argv[1], "rb").read()); c.shutdown(socket.SHUT_WR)
print(c.recv(64).decode())
' "$W/payload" 2>/dev/null) || return 1
  [ "$got" = "$WANT" ]
}
sa() { ip -s -n "$1" xfrm state get src "$2" dst "$3" proto esp spi "$4"; }
pkts() {  # packets counted by an SA
  sa "$@" | sed -n 's/^[[:space:]]*[0-9]*(bytes), \([0-9]*\)(packets).*/\1/p' | head -1
}
nokeys() { sed -E 's/0x[0-9a-f]{32,}/<key>/g'; }  # show SAs without key material

step "keys: two HMAC-SHA-256-128 keys; enable on both"
(cd "$W" && "$CTL" keys-new "$W/keys" "$W/pass" k-ab:HMAC-SHA-256-128 k-ba:HMAC-SHA-256-128)
ip netns exec "$A" "$CTL" enable "$W/list.txt" "$W/keys" "$W/pass"
ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys" "$W/pass" --swap

step "the kernel holds ESP SAs with the NULL cipher (no key) and hmac(sha256) 128"
sa "$A" 192.0.2.1 192.0.2.2 0x2000 > "$W/sa-a"
nokeys < "$W/sa-a"
grep -Eq '^[[:space:]]*proto esp spi 0x00002000[( ].*mode transport' "$W/sa-a" || fail "pa: ESP SA 0x2000 not installed"
grep -Eq '^[[:space:]]*enc ecb\(cipher_null\)[[:space:]]*(0x)?[[:space:]]*$' "$W/sa-a" ||
  fail "pa: SA 0x2000 is not 'enc ecb(cipher_null)' without key: $(grep -E '^[[:space:]]*(enc|aead)' "$W/sa-a" | sed 's/0x[0-9a-f]*/<key>/')"
grep -Eq '^[[:space:]]*auth-trunc hmac\(sha256\) 0x[0-9a-f]{64} (\(256 bits\) )?128[[:space:]]*$' "$W/sa-a" || fail "pa: SA 0x2000 has no hmac(sha256) 128 with a 32-byte key"
grep -q 'aead' "$W/sa-a" && fail "pa: SA 0x2000 carries an AEAD"
# (Outputs go to files first: with pipefail, `cmd | grep -q` fails when grep exits before cmd is done.)
sa "$B" 192.0.2.2 192.0.2.1 0x2001 > "$W/sa-b"
grep -Eq '^[[:space:]]*enc ecb\(cipher_null\)' "$W/sa-b" || fail "pb: SA 0x2001 is not ecb(cipher_null)"
[ "$(ip -n "$A" xfrm state | grep -c '^src')" = 2 ] || fail "expected 2 SAs on pa"
ip -n "$A" xfrm policy > "$W/pol-a"
grep -q 'proto esp' "$W/pol-a" || fail "no PROTECT policy with an ESP template on pa"

step "TCP to 5201 flows as ESP; the payload is readable on the wire"
# Capture on pb's veth: IPv4 ESP packets of SPI 0x2000 carrying the marker, and clear TCP to 5201.
ip netns exec "$B" /usr/bin/python3 -c '
import os, socket, struct, sys, time
marker, ready, stop, out = sys.argv[1].encode(), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("vb", 0)); s.settimeout(0.2)
open(ready, "w").close()
esp = esp_marker = clear_tcp = 0
end = time.time() + 90
while time.time() < end and not os.path.exists(stop):
    try:
        f = s.recv(65535)
    except socket.timeout:
        continue
    if len(f) < 34 or f[12:14] != b"\x08\x00": continue
    ip = f[14:]; ihl = (ip[0] & 0x0f) * 4; proto = ip[9]; l4 = ip[ihl:]
    if proto == 50 and len(l4) >= 8 and struct.unpack("!I", l4[:4])[0] == 0x2000:
        esp += 1
        if marker in l4: esp_marker += 1
    elif proto == 6 and len(l4) >= 4 and 5201 in struct.unpack("!HH", l4[:4]):
        clear_tcp += 1
open(out, "w").write("%d %d %d\n" % (esp, esp_marker, clear_tcp))
' "$MARKER" "$W/cap.ready" "$W/cap.stop" "$W/cap.out" &
CAP=$!; PIDS+=($CAP)
for _ in $(seq 100); do [ -e "$W/cap.ready" ] && break; sleep 0.1; done
[ -e "$W/cap.ready" ] || fail "capture did not start"
o0=$(oseq "$A" 192.0.2.1 192.0.2.2 0x2000); p0=$(pkts "$B" 192.0.2.1 192.0.2.2 0x2000)
r0=$(oseq "$B" 192.0.2.2 192.0.2.1 0x2001)
send || fail "TCP to port 5201 (ESP-INTEGRITY) failed"
touch "$W/cap.stop"; wait "$CAP" || fail "capture failed"
o1=$(oseq "$A" 192.0.2.1 192.0.2.2 0x2000); p1=$(pkts "$B" 192.0.2.1 192.0.2.2 0x2000)
r1=$(oseq "$B" 192.0.2.2 192.0.2.1 0x2001)
read -r esp esp_marker clear_tcp < "$W/cap.out"
echo "pa SA 0x2000 oseq $o0 -> $o1; pb SA 0x2000 packets $p0 -> $p1; pb SA 0x2001 oseq $r0 -> $r1"
echo "capture on vb: $esp ESP packets of SPI 0x2000, $esp_marker with the payload in clear, $clear_tcp plain TCP packets of port 5201"
[ $((o1 - o0)) -ge 40 ] || fail "outbound SA on pa did not count the transfer"
[ "${p1:-0}" -gt "${p0:-0}" ] || fail "inbound SA on pb did not count packets"
[ $((r1 - r0)) -ge 1 ] || fail "return traffic on pb did not use its SA"
[ "$esp" -ge 40 ] || fail "fewer ESP packets on the wire than expected ($esp)"
[ "$esp_marker" -ge 1 ] || fail "the payload is not readable inside the ESP packets (encrypted?)"
[ "$clear_tcp" = 0 ] || fail "$clear_tcp TCP packets of port 5201 went unprotected"
ip netns exec "$A" "$CTL" status "$W/list.txt" | tee "$W/status.a"
grep -Eq '^integ-out out PROTECT .* packets=[1-9]' "$W/status.a" || fail "status counters of integ-out did not rise"

step "a wrong integrity key on pb makes it fail (ICV check)"
ip netns exec "$B" "$CTL" disable > /dev/null
(cd "$W" && "$CTL" keys-new "$W/keys.other" "$W/pass" k-ab:HMAC-SHA-256-128 k-ba:HMAC-SHA-256-128 > /dev/null)
ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys.other" "$W/pass" --swap > /dev/null
e0=$(xfrm_stat "$B" XfrmInStateProtoError)
if send; then fail "ESP-INTEGRITY traffic got through with a wrong integrity key"; fi
e1=$(xfrm_stat "$B" XfrmInStateProtoError)
echo "pb XfrmInStateProtoError $e0 -> $e1"
[ "$e1" -gt "$e0" ] || fail "pb did not count integrity failures (XfrmInStateProtoError)"
# iproute2 prints the SA's integrity_failed counter as "failed N" in its stats.
sa "$B" 192.0.2.1 192.0.2.2 0x2000 | nokeys > "$W/bad-sa"
grep -E 'replay-window .* failed' "$W/bad-sa" || true
grep -Eq 'replay-window .* failed [1-9]' "$W/bad-sa" || fail "pb SA 0x2000 did not count integrity failures"

step "the right key again restores it"
ip netns exec "$B" "$CTL" enable "$W/list.txt" "$W/keys" "$W/pass" --swap > /dev/null
send || fail "ESP-INTEGRITY traffic failed after restoring the key"

step "disable removes the SAs"
ip netns exec "$A" "$CTL" disable
ip netns exec "$B" "$CTL" disable
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SAs left on pa after disable"
[ -z "$(ip -n "$B" xfrm state)" ] || fail "SAs left on pb after disable"
send || fail "clear traffic after disabling both sides failed"
echo "ESP integrity-only scenario OK"
