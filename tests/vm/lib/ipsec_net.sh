#!/bin/bash
# Shared by the IPsec vm scenarios: two namespaces joined by a veth pair,
# TCP echo-digest servers, ICMP echo, and readers of the kernel's own counters
# (`ip -s xfrm state`, /proc/net/xfrm_stat) that judge what storcrypt did.
#
#   [A] 192.0.2.1 va ---- veth ---- vb 192.0.2.2 [B]
#
# ipsec_net_init NAME sets W (work directory), A and B (namespace names) and
# PIDS (background servers), brings the namespaces up and cleans everything up
# on exit; a caller with more to clean defines ipsec_net_extra_cleanup.

ipsec_net_init() {  # ipsec_net_init NAME
  W=$(mktemp -d "/tmp/$1.XXXXXX")
  A=$1-a-$$; B=$1-b-$$
  PIDS=()
  trap ipsec_net_cleanup EXIT
  ipsec_net_up
}
ipsec_net_cleanup() {
  if declare -F ipsec_net_extra_cleanup > /dev/null; then ipsec_net_extra_cleanup; fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true
  rm -rf "$W"
}

ipsec_net_up() {
  modprobe -a esp4 xfrm_user veth 2>/dev/null || true
  modprobe -a gcm aes_generic seqiv 2>/dev/null || true
  ip netns add "$A"; ip netns add "$B"
  ip link add va netns "$A" type veth peer name vb netns "$B"
  ip -n "$A" addr add 192.0.2.1/24 dev va; ip -n "$B" addr add 192.0.2.2/24 dev vb
  for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
  ip -n "$A" link set va up; ip -n "$B" link set vb up
}

# A TCP server in B for a port (on ADDR, default 192.0.2.2): reads to EOF,
# answers with the SHA-256.
serve() {  # serve PORT [ADDR]
  local addr=${2:-192.0.2.2}
  ip netns exec "$B" /usr/bin/python3 -c '
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[1]))); s.listen(8)
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
' "$1" "$addr" > /dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do ip netns exec "$B" ss -ltn | grep "$addr:$1 " > /dev/null && break; sleep 0.1; done
}

# send PORT [FILE]: FILE (default: 64 KiB of random bytes) from A to B's
# server on PORT; succeeds iff the digest comes back intact.
send() { send_to 192.0.2.2 "$@"; }
send_to() {  # send_to ADDR PORT [FILE]: like send, to B's server on ADDR
  local dst=$1; shift
  local payload=${2:-}
  if [ -z "$payload" ]; then payload=$W/payload.random; head -c 65536 /dev/urandom > "$payload"; fi
  local want; want=$(sha256sum < "$payload" | cut -d' ' -f1)
  local got
  got=$(ip netns exec "$A" timeout 60 /usr/bin/python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[3], int(sys.argv[1])), timeout=20)
c.settimeout(20)
c.sendall(open(sys.argv[2], "rb").read()); c.shutdown(socket.SHUT_WR)
print(c.recv(64).decode())
' "$1" "$payload" "$dst" 2>/dev/null) || return 1
  [ "$got" = "$want" ]
}

# icmp_echo [NS SRC DST]: one ICMP echo (default: from A to 192.0.2.2, any
# source) with a raw socket (the guest has no ping binary); 0 when answered.
icmp_echo() {
  ip netns exec "${1:-$A}" timeout 10 /usr/bin/python3 -c '
import os, socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(3)
if sys.argv[1]: s.bind((sys.argv[1], 0))
ident = os.getpid() & 0xffff
hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"storcrypt-vm-echo!"  # even length: csum() sums 16-bit words
pkt = hdr[:2] + struct.pack("!H", csum(hdr)) + hdr[4:]
s.sendto(pkt, (sys.argv[2], 0))
while True:
    data, src = s.recvfrom(2048)
    icmp = data[(data[0] & 0x0f) * 4:]
    if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident and src[0] == sys.argv[2]:
        sys.exit(0)
' "${2:-}" "${3:-192.0.2.2}"
}

oseq() {  # oseq NS SRC DST SPI -> outbound sequence number of the SA (decimal)
  local v; v=$(ip -s -n "$1" xfrm state get src "$2" dst "$3" proto esp spi "$4" | sed -n 's/.*oseq 0x\([0-9a-f]*\).*/\1/p' | head -1)
  echo $((16#${v:-0}))
}
inpkts() {  # packets counted by an (inbound) SA
  ip -s -n "$1" xfrm state get src "$2" dst "$3" proto esp spi "$4" | awk '/lifetime current:/{getline; getline; print $1}' | sed 's/(packets).*//'
}
xfrm_stat() { ip netns exec "$1" awk -v k="$2" '$1 == k {print $2}' /proc/net/xfrm_stat; }  # NS COUNTER
polblock() { xfrm_stat "$1" XfrmOutPolBlock; }
# expect_discarded PORT: TCP from A to PORT must not get through and A's
# XfrmOutPolBlock must rise (left in POLBLOCK). Uses the caller's fail().
expect_discarded() {
  local b0; b0=$(polblock "$A")
  if send "$1"; then fail "TCP to discarded port $1 got through"; fi
  POLBLOCK=$(polblock "$A")
  echo "XfrmOutPolBlock $b0 -> $POLBLOCK"
  [ "$POLBLOCK" -gt "$b0" ] || fail "XfrmOutPolBlock did not rise"
}
# The two-site policy list (written on A; B imports it with --swap).
two_site_list() { cp "$(dirname "${BASH_SOURCE[0]}")/two_site_list.txt" "$1"; }
