# Shared helpers for the netlink kernel-VM scenarios (sourced).
set -euo pipefail
XFRMCTL=${STORCRYPT_BUILD_DIR:-$PWD}/tests/vm/netlink/xfrmctl
[ -x "$XFRMCTL" ] || { echo "xfrmctl not built: $XFRMCTL"; exit 1; }
modprobe -a esp4 esp6 xfrm_user veth dummy 2>/dev/null || true
KEYDIR=$(mktemp -d /tmp/sc-keys.XXXXXX)
chmod 700 "$KEYDIR"

# keyfile NAME BYTES: random key material in a 0600 file (hex); prints the path.
keyfile() {
  local f="$KEYDIR/$1"
  (umask 077; head -c "$2" /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f")
  echo "$f"
}

# Two namespaces A and B joined by veth (outer 192.0.2.0/24 and 2001:db8::/64),
# with inner networks on dummy devices: A 198.51.100.1/24 + 2001:db8:a::1/64,
# B 203.0.113.1/24 + 2001:db8:b::1/64.
topology() {
  ip netns add A; ip netns add B
  ip link add va netns A type veth peer name vb netns B
  ip -n A addr add 192.0.2.1/24 dev va; ip -n B addr add 192.0.2.2/24 dev vb
  ip -n A addr add 2001:db8::1/64 dev va nodad; ip -n B addr add 2001:db8::2/64 dev vb nodad
  for ns in A B; do ip -n $ns link set lo up; done
  ip -n A link set va up; ip -n B link set vb up
  ip -n A link add ia type dummy; ip -n A link set ia up
  ip -n A addr add 198.51.100.1/24 dev ia; ip -n A addr add 2001:db8:a::1/64 dev ia nodad
  ip -n B link add ib type dummy; ip -n B link set ib up
  ip -n B addr add 203.0.113.1/24 dev ib; ip -n B addr add 2001:db8:b::1/64 dev ib nodad
  ip -n A route add 203.0.113.0/24 via 192.0.2.2 src 198.51.100.1
  ip -n B route add 198.51.100.0/24 via 192.0.2.1 src 203.0.113.1
  ip -n A -6 route add 2001:db8:b::/64 via 2001:db8::2 src 2001:db8:a::1
  ip -n B -6 route add 2001:db8:a::/64 via 2001:db8::1 src 2001:db8:b::1
}

cleanup_topology() { ip netns del A 2>/dev/null || true; ip netns del B 2>/dev/null || true; rm -rf "$KEYDIR"; }

# site_addrs FAMILY: tunnel endpoints (oa, ob) and site networks (na, nb) of a family, 4 or 6.
site_addrs() {
  if [ "$1" = 4 ]; then oa=192.0.2.1 ob=192.0.2.2 na=198.51.100.0/24 nb=203.0.113.0/24
  else oa=2001:db8::1 ob=2001:db8::2 na=2001:db8:a::/64 nb=2001:db8:b::/64; fi
}

# site_policies FAMILY REQID [XFRMCTL OPTIONS...]: tunnel policies between the two
# site networks in both namespaces (out and in), templates to the endpoints.
site_policies() {
  local fam=$1 reqid=$2 oa ob na nb; shift 2
  site_addrs "$fam"
  "$XFRMCTL" --netns A policy-add --src $na --dst $nb --dir out --tmpl-src $oa --tmpl-dst $ob --reqid $reqid "$@"
  "$XFRMCTL" --netns A policy-add --src $nb --dst $na --dir in --tmpl-src $ob --tmpl-dst $oa --reqid $reqid "$@"
  "$XFRMCTL" --netns B policy-add --src $nb --dst $na --dir out --tmpl-src $ob --tmpl-dst $oa --reqid $reqid "$@"
  "$XFRMCTL" --netns B policy-add --src $na --dst $nb --dir in --tmpl-src $oa --tmpl-dst $ob --reqid $reqid "$@"
}

# tunnel FAMILY SPI_AB SPI_BA KEY_AB KEY_BA_B [KEY_BA_A]: GCM-256 tunnel-mode SAs and
# policies in both namespaces through xfrmctl. FAMILY 4 or 6.
tunnel() {
  local fam=$1 sab=$2 sba=$3 kab=$4 kba=$5
  local oa ob na nb
  site_addrs "$fam"
  for ns in A B; do
    "$XFRMCTL" --netns $ns sa-add --src $oa --dst $ob --spi $sab --reqid $fam --enc aes-gcm-256 \
      --enc-key-file "$kab" --replay 32
    "$XFRMCTL" --netns $ns sa-add --src $ob --dst $oa --spi $sba --reqid $fam --enc aes-gcm-256 \
      --enc-key-file "$kba" --replay 32
  done
  site_policies "$fam" "$fam" --priority "100$fam"
}

# tcp_transfer ADDR PORT: send 64 KiB from A to a listener on B at ADDR; 0 when
# the SHA-256 of what B received matches.
tcp_transfer() {
  local addr=$1 port=$2 payload=/tmp/sc-payload
  head -c 65536 /dev/urandom > $payload
  local want; want=$(sha256sum < $payload | cut -d' ' -f1)
  rm -f /tmp/sc-received.sha
  ip netns exec B /usr/bin/python3 -c '
import hashlib, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20); h = hashlib.sha256()
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b)
open("/tmp/sc-received.sha", "w").write(h.hexdigest())
' "$addr" "$port" &
  local lpid=$!
  for i in $(seq 50); do ip netns exec B ss -ltn | grep ":$port" > /dev/null && break; sleep 0.2; done
  local rc=0
  ip netns exec A /usr/bin/python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(open(sys.argv[3], "rb").read()); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
' "$addr" "$port" $payload || rc=1
  if [ $rc -ne 0 ]; then kill $lpid 2>/dev/null || true; wait $lpid 2>/dev/null || true; return 1; fi
  wait $lpid || return 1
  [ "$want" = "$(cat /tmp/sc-received.sha)" ]
}
