#!/bin/bash
# Kernel smoke: two namespaces joined by veth carry TCP through a pair of
# tunnel-mode ESP SAs with rfc4106(gcm(aes)); the SA counters prove the
# traffic was encrypted. SAs are installed with `ip xfrm` (the netlink/
# library has its own vm tests).
set -euo pipefail
modprobe -a esp4 xfrm_user veth gcm aes_generic 2>/dev/null || modprobe -a esp4 xfrm_user veth
grep -q 'rfc4106(gcm(aes))' /proc/crypto || modprobe seqiv || true

cleanup() { ip netns del A 2>/dev/null || true; ip netns del B 2>/dev/null || true; }
trap cleanup EXIT
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
ip -n A addr add 192.0.2.1/24 dev va; ip -n B addr add 192.0.2.2/24 dev vb
ip -n A link set va up; ip -n B link set vb up; ip -n A link set lo up; ip -n B link set lo up
# inner (protected) subnets on loopback-less dummy devices
modprobe dummy
ip -n A link add ia type dummy; ip -n A addr add 198.51.100.1/24 dev ia; ip -n A link set ia up
ip -n B link add ib type dummy; ip -n B addr add 203.0.113.1/24 dev ib; ip -n B link set ib up
ip -n A route add 203.0.113.0/24 via 192.0.2.2 src 198.51.100.1
ip -n B route add 198.51.100.0/24 via 192.0.2.1 src 203.0.113.1

KAB=0x$(head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n')
KBA=0x$(head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n')
for ns in A B; do
  ip -n $ns xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel \
    aead 'rfc4106(gcm(aes))' "$KAB" 128
  ip -n $ns xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2001 reqid 1 mode tunnel \
    aead 'rfc4106(gcm(aes))' "$KBA" 128
done
ip -n A xfrm policy add src 198.51.100.0/24 dst 203.0.113.0/24 dir out tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
ip -n A xfrm policy add src 203.0.113.0/24 dst 198.51.100.0/24 dir in tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 1 mode tunnel
ip -n B xfrm policy add src 203.0.113.0/24 dst 198.51.100.0/24 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 1 mode tunnel
ip -n B xfrm policy add src 198.51.100.0/24 dst 203.0.113.0/24 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel

ip -n A xfrm state | grep 'rfc4106(gcm(aes))' > /dev/null || { echo "SA not installed with rfc4106(gcm(aes))"; exit 1; }

# TCP through the tunnel: a listener on B reads to EOF and prints the SHA-256
# of what arrived; A sends 64 KiB of random data.
payload=/tmp/payload; head -c 65536 /dev/urandom > $payload
want=$(sha256sum < $payload | cut -d' ' -f1)
ip netns exec B /usr/bin/python3 -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.1", 5000)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30); h = hashlib.sha256()
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b)
open("/tmp/received.sha", "w").write(h.hexdigest())
' &
lpid=$!
for i in $(seq 50); do ip netns exec B ss -ltn | grep ':5000' > /dev/null && break; sleep 0.2; done
ip netns exec A /usr/bin/python3 -c '
import socket, sys
c = socket.create_connection(("203.0.113.1", 5000), timeout=30)
c.sendall(open(sys.argv[1], "rb").read()); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
' $payload
wait $lpid
got=$(cat /tmp/received.sha)
[ "$want" = "$got" ] || { echo "TCP payload corrupted or lost through the tunnel"; exit 1; }

# The outbound SA on A counted the bytes: traffic was ESP-encrypted.
ip -s -n A xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 > /tmp/sa
oseq=$(sed -n 's/.*oseq 0x\([0-9a-f]*\).*/\1/p' /tmp/sa | head -1)
bytes=$(awk '/lifetime current:/{getline; print $1}' /tmp/sa | sed 's/(bytes).*//')
echo "outbound SA: oseq=0x$oseq bytes=${bytes}"
[ $((16#${oseq:-0})) -gt 10 ] || { echo "ESP sequence counter did not advance"; exit 1; }
[ "${bytes:-0}" -gt 65536 ] || { echo "SA byte counter below payload size"; exit 1; }
echo "ESP tunnel OK"
