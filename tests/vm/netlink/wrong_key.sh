#!/bin/bash
# Mismatched keys: B's inbound SA has a different key from A's outbound SA.
# Traffic must fail and the kernel's integrity-failure counters must rise,
# as seen both through storcrypt (sa-counters, which also checks ip -s) and
# /proc/net/xfrm_stat.
source "$(dirname "$0")/lib.sh"
trap cleanup_topology EXIT
topology
kab=$(keyfile ab 36); kba=$(keyfile ba 36); bad=$(keyfile bad 36)
for ns in A B; do
  k=$kab; [ $ns = B ] && k=$bad
  "$XFRMCTL" --netns $ns sa-add --src 192.0.2.1 --dst 192.0.2.2 --spi 4097 --reqid 1 --enc aes-gcm-256 --enc-key-file $k --replay 32
  "$XFRMCTL" --netns $ns sa-add --src 192.0.2.2 --dst 192.0.2.1 --spi 8193 --reqid 1 --enc aes-gcm-256 --enc-key-file $kba --replay 32
done
site_policies 4 1
before=$(ip netns exec B awk '/XfrmInStateProtoError/{print $2}' /proc/net/xfrm_stat)
if tcp_transfer 203.0.113.1 5000; then echo "traffic passed with mismatched keys"; exit 1; fi
after=$(ip netns exec B awk '/XfrmInStateProtoError/{print $2}' /proc/net/xfrm_stat)
echo "XfrmInStateProtoError $before -> $after"
[ "$after" -gt "$before" ] || { echo "kernel error counter did not rise"; exit 1; }
line=$("$XFRMCTL" --netns B sa-counters --src 192.0.2.1 --dst 192.0.2.2 --spi 4097)
echo "B inbound: $line"
failed=$(sed -n 's/.*integrity_failed=\([0-9]*\).*/\1/p' <<<"$line")
[ "$failed" -gt 0 ] || { echo "SA integrity_failed counter did not rise"; exit 1; }
echo "wrong key OK"
