#!/bin/bash
# Soft and hard packet limits on A's outbound SA: datagrams through the tunnel
# must raise a soft then a hard EXPIRE event on storcrypt's subscription, and
# the hard expiry removes the SA.
source "$(dirname "$0")/lib.sh"
trap cleanup_topology EXIT
topology
kab=$(keyfile ab 36); kba=$(keyfile ba 36)
for ns in A B; do
  extra=(); [ $ns = A ] && extra=(--soft-packets 5 --hard-packets 10)
  "$XFRMCTL" --netns $ns sa-add --src 192.0.2.1 --dst 192.0.2.2 --spi 12289 --reqid 9 --enc aes-gcm-256 --enc-key-file $kab --replay 32 "${extra[@]}"
  "$XFRMCTL" --netns $ns sa-add --src 192.0.2.2 --dst 192.0.2.1 --spi 16385 --reqid 9 --enc aes-gcm-256 --enc-key-file $kba --replay 32
done
site_policies 4 9
rm -f /tmp/sc-ready
"$XFRMCTL" --netns A events --count 2 --timeout 120 --ready-file /tmp/sc-ready > /tmp/sc-events.log &
epid=$!
for i in $(seq 100); do [ -f /tmp/sc-ready ] && break; sleep 0.1; done
# 15 UDP datagrams from A's inner address through the outbound SA (no listener needed).
ip netns exec A /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.51.100.1", 0))
for i in range(15):
    try: s.sendto(b"x" * 100, ("203.0.113.1", 9))
    except OSError as e: print("send", i, e)
    time.sleep(0.1)
' > /tmp/sc-ping.log 2>&1 || true
wait $epid || { echo "events:"; cat /tmp/sc-events.log; cat /tmp/sc-ping.log; exit 1; }
cat /tmp/sc-events.log
grep -q '^expire soft spi=0x00003001 reqid=9' /tmp/sc-events.log || { echo "no soft expire"; exit 1; }
grep -q '^expire hard spi=0x00003001 reqid=9' /tmp/sc-events.log || { echo "no hard expire"; exit 1; }
ip -n A xfrm state | grep 'spi 0x00003001' > /dev/null && { echo "hard-expired SA still present"; exit 1; }
echo "expiry OK"
