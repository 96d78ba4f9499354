#!/bin/bash
# Every supported SA shape installed through storcrypt::netlink and read back
# with `ip -s xfrm state get`: algorithm, key, ICV/truncation, lifetimes,
# replay window, ESN, mark, if_id, UDP encapsulation (xfrmctl sa-check
# compares field by field and fails on any difference).
source "$(dirname "$0")/lib.sh"
trap 'ip netns del S 2>/dev/null || true; rm -rf "$KEYDIR"' EXIT
ip netns add S
g128=$(keyfile g128 20); g256=$(keyfile g256 36)
c128=$(keyfile c128 16); c192=$(keyfile c192 24); c256=$(keyfile c256 32)
s1=$(keyfile s1 20); s256=$(keyfile s256 32); s384=$(keyfile s384 48); s512=$(keyfile s512 64)
spi=4096
check() { spi=$((spi + 1)); "$XFRMCTL" --netns S sa-check --spi $spi --reqid 7 "$@"; }
for fam in 4 6; do
  if [ $fam = 4 ]; then src=192.0.2.1 dst=192.0.2.2; else src=2001:db8::1 dst=2001:db8::2; fi
  A=(--src $src --dst $dst)
  check "${A[@]}" --enc aes-gcm-128 --enc-key-file $g128 --replay 32
  check "${A[@]}" --enc aes-gcm-256 --enc-key-file $g256 --replay 64 --esn
  check "${A[@]}" --enc aes-cbc-128 --enc-key-file $c128 --integ hmac-sha1-96 --integ-key-file $s1
  check "${A[@]}" --enc aes-cbc-192 --enc-key-file $c192 --integ hmac-sha256-128 --integ-key-file $s256
  check "${A[@]}" --enc aes-cbc-256 --enc-key-file $c256 --integ hmac-sha384-192 --integ-key-file $s384
  check "${A[@]}" --enc aes-cbc-256 --enc-key-file $c256 --integ hmac-sha512-256 --integ-key-file $s512 --mode transport
  check "${A[@]}" --enc aes-cbc-128 --enc-key-file $c128 --allow-no-integrity
  check "${A[@]}" --proto ah --integ hmac-sha256-128 --integ-key-file $s256
  # ESP integrity only (enc none = ecb(cipher_null) without key).
  check "${A[@]}" --enc none --integ hmac-sha256-128 --integ-key-file $s256 --mode transport
  check "${A[@]}" --enc none --integ hmac-sha1-96 --integ-key-file $s1
  check "${A[@]}" --proto ah --integ hmac-sha512-256 --integ-key-file $s512 --mode transport
  check "${A[@]}" --enc aes-gcm-256 --enc-key-file $g256 --replay 128 \
    --soft-bytes 1000000 --hard-bytes 2000000 --soft-packets 1000 --hard-packets 2000 --soft-add 300 --hard-add 600
  check "${A[@]}" --enc aes-gcm-256 --enc-key-file $g256 --mark 0x10/0xf0 --if-id 77
done
check --src 192.0.2.1 --dst 192.0.2.2 --enc aes-gcm-256 --enc-key-file $g256 --encap 4500:4501

# An allocated SPI (larval SA) completed with UPDSA, as the controller does for inbound SAs.
aspi=$("$XFRMCTL" --netns S spi-alloc --src 192.0.2.2 --dst 192.0.2.1 --reqid 7 --min 1048576 --max 2097151)
[ "$aspi" -ge 1048576 ] && [ "$aspi" -le 2097151 ] || { echo "allocated SPI $aspi outside the range"; exit 1; }
out=$("$XFRMCTL" --netns S sa-add --src 192.0.2.2 --dst 192.0.2.1 --spi $aspi --reqid 7 --enc aes-gcm-256 --enc-key-file $g256 2>&1) \
  && { echo "NEWSA over a larval SA should conflict"; exit 1; }
echo "$out" | grep 'conflict' > /dev/null || { echo "expected a conflict: $out"; exit 1; }
"$XFRMCTL" --netns S sa-check --update --src 192.0.2.2 --dst 192.0.2.1 --spi $aspi --reqid 7 --enc aes-gcm-256 --enc-key-file $g256 --replay 64

# Bad input is refused before the kernel and names the field.
out=$("$XFRMCTL" --netns S sa-add --src 192.0.2.1 --dst 192.0.2.2 --spi 9999 --enc aes-gcm-256 --enc-key-file $c256 2>&1) \
  && { echo "short GCM key accepted"; exit 1; }
echo "$out" | grep 'enc_key:' > /dev/null || { echo "wrong key length error does not name enc_key: $out"; exit 1; }
out=$("$XFRMCTL" --netns S sa-add --src 192.0.2.1 --dst 192.0.2.2 --spi 200 --enc aes-gcm-256 --enc-key-file $g256 2>&1) \
  && { echo "reserved SPI accepted"; exit 1; }
echo "$out" | grep 'spi:' > /dev/null || { echo "reserved SPI error does not name spi: $out"; exit 1; }
! grep -q "$(cat $g256)" <<<"$out" || { echo "key material in an error message"; exit 1; }
out=$("$XFRMCTL" --netns S sa-add --src 192.0.2.1 --dst 192.0.2.2 --spi 9998 --enc none 2>&1) \
  && { echo "ESP with neither encryption nor integrity accepted"; exit 1; }
echo "$out" | grep 'enc:' > /dev/null || { echo "ESP without enc and integ: error does not name enc: $out"; exit 1; }
echo "SA algorithms OK"
