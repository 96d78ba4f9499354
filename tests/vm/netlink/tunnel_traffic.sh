#!/bin/bash
# TCP through tunnel-mode ESP (GCM-256) between two namespaces, IPv4 and IPv6,
# SAs and policies installed through storcrypt::netlink. Our counters must
# equal `ip -s xfrm state`; deleting the outbound SA stops traffic.
source "$(dirname "$0")/lib.sh"
trap cleanup_topology EXIT
topology
tunnel 4 0x1001 0x2001 "$(keyfile ab4 36)" "$(keyfile ba4 36)"
tunnel 6 0x1006 0x2006 "$(keyfile ab6 36)" "$(keyfile ba6 36)"
tcp_transfer 203.0.113.1 5000 || { echo "IPv4 TCP through ESP failed"; exit 1; }
tcp_transfer 2001:db8:b::1 5001 || { echo "IPv6 TCP through ESP failed"; exit 1; }
for spec in "192.0.2.1 192.0.2.2 0x1001" "2001:db8::1 2001:db8::2 0x1006"; do
  set -- $spec
  line=$("$XFRMCTL" --netns A sa-counters --src $1 --dst $2 --spi $(($3)))  # fails if ip -s differs
  echo "A outbound $3: $line"
  bytes=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$line")
  [ "$bytes" -gt 65536 ] || { echo "outbound SA $3 counted only $bytes bytes"; exit 1; }
  line=$("$XFRMCTL" --netns B sa-counters --src $1 --dst $2 --spi $(($3)))
  echo "B inbound $3: $line"
done
"$XFRMCTL" --netns A sa-del --dst 192.0.2.2 --spi $((0x1001))
ip -n A xfrm state | grep 'spi 0x00001001' > /dev/null && { echo "SA still listed after delete"; exit 1; }
if tcp_transfer 203.0.113.1 5002; then echo "traffic still flows without the outbound SA"; exit 1; fi
tcp_transfer 2001:db8:b::1 5003 || { echo "IPv6 tunnel broken by deleting the IPv4 SA"; exit 1; }
echo "tunnel traffic OK"
