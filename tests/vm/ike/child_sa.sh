#!/bin/bash
# A CHILD_SA installed by ike::XfrmChildSaKernel on a kernel with ESP, judged
# by `ip -s xfrm`: AES-GCM-16-256 as rfc4106(gcm(aes)) with a 288-bit key and
# 128-bit ICV, tunnel mode, ESP-in-UDP 4500/4500, 3 policies with IKE-range
# indexes; AES-CBC-256 + HMAC-SHA-384-192; remove() leaves a foreign
# (charon-like) policy and SA untouched. Runs in the netlink VM boot.
set -euo pipefail
CTL=${STORCRYPT_BUILD_DIR:-$PWD}/tests/vm/ike/ikechildctl
[ -x "$CTL" ] || { echo "ikechildctl not built: $CTL"; exit 1; }
modprobe -a esp4 xfrm_user 2>/dev/null || true
trap 'ip netns del IKE 2>/dev/null || true' EXIT
ip netns add IKE
# A foreign neighbour: charon-like SA and policy (reqid 1, kernel-chosen index).
ip -n IKE xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel \
  aead 'rfc4106(gcm(aes))' 0x$(head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n') 128
ip -n IKE xfrm policy add src 198.51.100.0/24 dst 203.0.113.0/24 dir out mark 0x20 mask 0xff \
  tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
foreign_before=$(ip -n IKE xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001; ip -n IKE xfrm policy get src 198.51.100.0/24 dst 203.0.113.0/24 dir out mark 0x20 mask 0xff)

read -r reqid spi_in spi_out <<<"$("$CTL" IKE install gcm encap)"
st=$(ip -n IKE -s xfrm state)
echo "$st"
in=$(ip -n IKE xfrm state get src 192.0.2.2 dst 192.0.2.1 proto esp spi $spi_in)
out=$(ip -n IKE xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi $spi_out)
for s in "$in" "$out"; do
  grep -Eq "aead rfc4106\(gcm\(aes\)\) 0x[0-9a-f]{72} 128" <<<"$s" || { echo "no rfc4106(gcm(aes)) 288-bit key/128-bit ICV: $s"; exit 1; }
  grep -q "mode tunnel" <<<"$s" || { echo "not tunnel mode: $s"; exit 1; }
  grep -q "reqid $reqid " <<<"$s" || { echo "wrong reqid: $s"; exit 1; }
  grep -q "encap type espinudp sport 4500 dport 4500" <<<"$s" || { echo "no ESP-in-UDP 4500: $s"; exit 1; }
done
[ "$reqid" -ge $((0x6c000)) ] && [ "$reqid" -le $((0x7bfff)) ] || { echo "reqid $reqid outside the IKE half"; exit 1; }
pols=$(ip -n IKE xfrm policy | grep -c "reqid $reqid mode tunnel")
[ "$pols" = 3 ] || { echo "expected 3 policies of reqid $reqid, got $pols"; ip -n IKE xfrm policy; exit 1; }
idx=$(ip -n IKE -s xfrm policy | sed -n 's/.*index \([0-9]*\).*/\1/p')
ours=0; theirs=0
for i in $idx; do if [ "$i" -ge $((0xf8000000)) ]; then ours=$((ours + 1)); else theirs=$((theirs + 1)); fi; done
[ "$ours" = 3 ] && [ "$theirs" = 1 ] || { echo "indexes: $ours in the IKE range (want 3), $theirs below (want 1)"; exit 1; }

# A rekey (make-before-break): new SAs under the same reqid, the old ones
# removed one by one, the three policies untouched.
# The SPD one policy a line, sorted: installing the new outbound SA re-puts
# the OUT policy unchanged (to drop cached bundles), which moves it in the dump.
policies() {
  ip -n IKE xfrm policy | awk '/^[^ \t]/ { if (b != "") print b; b = "" } { b = b $0 " " } END { if (b != "") print b }' | sort
}
pols_before=$(policies)
read -r rk_reqid rk_in rk_out <<<"$("$CTL" IKE rekey $reqid $spi_in $spi_out)"
[ "$rk_reqid" = "$reqid" ] || { echo "rekey changed the reqid: $rk_reqid"; exit 1; }
[ "$rk_in" != "$spi_in" ] || { echo "rekey reused the inbound SPI"; exit 1; }
for spi in $rk_in $rk_out; do
  s=$(ip -n IKE xfrm state | grep -A6 "spi $(printf '0x%08x' $spi) " || true)
  grep -Eq "aead rfc4106\(gcm\(aes\)\) 0x[0-9a-f]{72} 128" <<<"$s" || { echo "rekeyed SA $spi missing or wrong: $s"; exit 1; }
  grep -q "reqid $reqid " <<<"$s" || { echo "rekeyed SA $spi has another reqid: $s"; exit 1; }
done
for spi in $spi_in $spi_out; do
  ! ip -n IKE xfrm state | grep -q "spi $(printf '0x%08x' $spi) " || { echo "old SA $spi still there"; exit 1; }
done
[ "$(policies)" = "$pols_before" ] || { echo "rekey changed the policies: $(policies)"; exit 1; }
spi_in=$rk_in; spi_out=$rk_out

read -r reqid2 spi_in2 spi_out2 <<<"$("$CTL" IKE install cbc)"
cbc=$(ip -n IKE xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi $spi_out2)
grep -Eq "auth-trunc hmac\(sha384\) 0x[0-9a-f]{96} 192" <<<"$cbc" || { echo "no hmac(sha384)/192: $cbc"; exit 1; }
grep -Eq "enc cbc\(aes\) 0x[0-9a-f]{64}" <<<"$cbc" || { echo "no cbc(aes) 256: $cbc"; exit 1; }
! grep -q encap <<<"$cbc" || { echo "unexpected encap: $cbc"; exit 1; }
[ "$reqid2" != "$reqid" ] || { echo "reqid reused"; exit 1; }

"$CTL" IKE remove $reqid $spi_in $spi_out
"$CTL" IKE remove $reqid2 $spi_in2 $spi_out2
left=$(ip -n IKE xfrm state | grep -c '^src' || true)
[ "$left" = 1 ] || { echo "expected only the foreign SA left, got $left"; ip -n IKE xfrm state; exit 1; }
foreign_after=$(ip -n IKE xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001; ip -n IKE xfrm policy get src 198.51.100.0/24 dst 203.0.113.0/24 dir out mark 0x20 mask 0xff)
[ "$foreign_before" = "$foreign_after" ] || { echo "foreign objects changed"; exit 1; }
[ "$(ip -n IKE xfrm policy | grep -c '^src' || true)" = 1 ] || { echo "policies left behind"; ip -n IKE xfrm policy; exit 1; }
echo "IKE CHILD_SA install OK"
