#!/bin/bash
# Shared by the IKEv2 interop scenarios (tests/vm/ike/interop_*.sh): two sites
# in two namespaces, our peer (ikepeerctl over ike::Runner) and strongSwan's
# charon (charon-systemd + swanctl, configured as an admin writes it), a test
# PKI made with the openssl CLI (ECDSA P-384 root -> intermediate -> one end
# entity per site), and checks that read the kernel's own state (`ip -s xfrm`,
# an nftables counter on the wire) and charon's (`swanctl --list-sas`).
#
# Direct topology (ike_net_direct):
#   198.51.100.1/24 [A] 192.0.2.1 va ---- veth ---- vb 192.0.2.2 [B] 203.0.113.1/24
#   (A also has 198.18.1.1/24, B 198.18.2.1/24: a second tunnel for charon<->charon)
# NAT topology (ike_net_nat): A behind N, which masquerades to B and maps
# A's UDP 500 to 1500 and 4500 to 14500 (fixed, so a reply to any other port
# fails, and two racing packets of one flow cannot get two mappings):
#   [A] 192.0.2.1 va -- na 192.0.2.126 [N] 192.0.2.129 nb -- vb 192.0.2.130 [B]
# The protected subnets sit on dummy interfaces; routes send them to the peer
# with the protected address as source, so only the XFRM policies decide.
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
PEERCTL=$build/tests/vm/ike/ikepeerctl
# serve/send_to (TCP digest), oseq/inpkts (SA counters), xfrm_stat.
source "$src/tests/vm/lib/ipsec_net.sh"

fail() { echo "FAIL: $*"; ike_dump; exit 1; }
ok() { echo "ok: $*"; }

ike_init() {  # ike_init NAME: W, A, B, N, cleanup on exit
  W=$(mktemp -d "/tmp/$1.XXXXXX")
  A=$1-a-$$ B=$1-b-$$ N=$1-n-$$
  PIDS=() PEERS=() CHARONS=()
  trap ike_cleanup EXIT
  # A command that fails outside a check (set -e) names itself.
  set -E
  trap 'echo "FAIL: line $LINENO: $BASH_COMMAND exited $?"' ERR
  [ -x "$PEERCTL" ] || { echo "ikepeerctl not built: $PEERCTL"; exit 1; }
  command -v charon-systemd > /dev/null && command -v swanctl > /dev/null \
    || { echo "charon-systemd/swanctl missing: run scripts/setup.sh"; exit 1; }
  command -v nft > /dev/null || { echo "nft missing (package nftables): run scripts/setup.sh"; exit 1; }
  modprobe -a esp4 xfrm_user veth dummy gcm aes_generic seqiv authenc cbc sha512 2>/dev/null || true
  modprobe -a nf_tables nft_chain_nat nft_masq nf_nat nft_counter 2>/dev/null || true
}
ike_cleanup() {
  local p
  for p in "${PEERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${CHARONS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$A" "$B" "$N"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$W"
}
# On failure: what each side said (never keys: ikepeerctl prints none, the
# charon log level does not include key material).
ike_dump() {
  local f
  for f in "$W"/*.out; do [ -f "$f" ] && { echo "--- $(basename "$f")"; tail -40 "$f"; }; done
  for f in "$W"/charon-*/charon.log; do [ -f "$f" ] && { echo "--- $f"; tail -40 "$f"; }; done
  for ns in "$A" "$B"; do
    ip netns list | grep -q "^$ns" || continue
    echo "--- ip xfrm state ($ns)"; ip -n "$ns" xfrm state | grep -Ev '^\s+(aead|enc|auth-trunc) ' || true
    echo "--- ip xfrm policy ($ns)"; ip -n "$ns" xfrm policy | head -40 || true
    echo "--- SA counters ($ns)"; ip -s -n "$ns" xfrm state | grep -E '^src|proto esp|encap|packets' || true
    echo "--- xfrm_stat ($ns)"; ip netns exec "$ns" awk '$2 != 0' /proc/net/xfrm_stat || true
  done
  if ip netns list | grep -q "^$N"; then
    echo "--- conntrack ($N)"; ip netns exec "$N" cat /proc/net/nf_conntrack 2>/dev/null || true
    echo "--- nft ($N)"; ip netns exec "$N" nft list ruleset || true
  fi
}

# ---- PKI: as an admin would make it with the openssl CLI ----
ike_pki() {  # ike_pki: $W/pki/{root,inter,site-a,site-b}.{pem,key}
  local d=$W/pki
  mkdir -p "$d"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$d/root.key" -out "$d/root.pem" -days 30 -sha384 \
    -subj "/O=storcrypt-vm/CN=storcrypt vm root CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -new "${ec[@]}" -keyout "$d/inter.key" -out "$d/inter.csr" -subj "/O=storcrypt-vm/CN=storcrypt vm intermediate CA" 2>/dev/null
  printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > "$d/inter.ext"
  openssl x509 -req -in "$d/inter.csr" -CA "$d/root.pem" -CAkey "$d/root.key" -set_serial 2 -days 30 -sha384 \
    -extfile "$d/inter.ext" -out "$d/inter.pem" 2>/dev/null
  local site san serial=10
  for site in site-a site-b; do
    san="DNS:$site.lab"
    openssl req -new "${ec[@]}" -keyout "$d/$site.key" -out "$d/$site.csr" -subj "/O=storcrypt-vm/CN=$site.lab" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=%s\n' "$san" > "$d/$site.ext"
    openssl x509 -req -in "$d/$site.csr" -CA "$d/inter.pem" -CAkey "$d/inter.key" -set_serial $((serial++)) -days 30 \
      -sha384 -extfile "$d/$site.ext" -out "$d/$site.pem" 2>/dev/null
    chmod 600 "$d/$site.key"
  done
  openssl verify -CAfile "$d/root.pem" -untrusted "$d/inter.pem" "$d/site-a.pem" "$d/site-b.pem" > /dev/null \
    || fail "test PKI does not verify"
  openssl x509 -in "$d/site-a.pem" -noout -text | grep -q "NIST CURVE: P-384" || fail "site-a key is not P-384"
}

# ---- topologies ----
ike_site() {  # ike_site NS DEV ADDR/LEN INNER/LEN...: addresses, inner prefixes on a dummy
  local ns=$1 dev=$2 addr=$3; shift 3
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr" dev "$dev"; ip -n "$ns" link set "$dev" up
  ip -n "$ns" link add inner type dummy; ip -n "$ns" link set inner up
  local p; for p in "$@"; do ip -n "$ns" addr add "$p" dev inner; done
}
ike_net_direct() {
  ip netns add "$A"; ip netns add "$B"
  ip link add va netns "$A" type veth peer name vb netns "$B"
  ike_site "$A" va 192.0.2.1/24 198.51.100.1/24 198.18.1.1/24
  ike_site "$B" vb 192.0.2.2/24 203.0.113.1/24 198.18.2.1/24
  ip -n "$A" route add 203.0.113.0/24 via 192.0.2.2 src 198.51.100.1
  ip -n "$A" route add 198.18.2.0/24 via 192.0.2.2 src 198.18.1.1
  ip -n "$B" route add 198.51.100.0/24 via 192.0.2.1 src 203.0.113.1
  ip -n "$B" route add 198.18.1.0/24 via 192.0.2.1 src 198.18.2.1
  A_OUT=192.0.2.1 B_OUT=192.0.2.2 A_SEEN=192.0.2.1 B_DEV=vb
  ike_wire_counters
}
ike_net_nat() {
  ip netns add "$A"; ip netns add "$B"; ip netns add "$N"
  ip link add va netns "$A" type veth peer name na netns "$N"
  ip link add nb netns "$N" type veth peer name vb netns "$B"
  ike_site "$A" va 192.0.2.1/25 198.51.100.1/24
  ike_site "$B" vb 192.0.2.130/25 203.0.113.1/24
  ip -n "$N" link set lo up
  ip -n "$N" addr add 192.0.2.126/25 dev na; ip -n "$N" link set na up
  ip -n "$N" addr add 192.0.2.129/25 dev nb; ip -n "$N" link set nb up
  ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$A" route add default via 192.0.2.126
  ip -n "$A" route add 203.0.113.0/24 via 192.0.2.126 src 198.51.100.1
  # B knows only the NAT's outside address (no route into A's inside network).
  ip -n "$B" route add 198.51.100.0/24 via 192.0.2.129 src 203.0.113.1
  ip netns exec "$N" nft -f - <<'EOF'
table ip nat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "nb" udp sport 500 counter snat to 192.0.2.129:1500
    oifname "nb" udp sport 4500 counter snat to 192.0.2.129:14500
    oifname "nb" counter masquerade
  }
}
EOF
  A_OUT=192.0.2.1 B_OUT=192.0.2.130 A_SEEN=192.0.2.129 B_DEV=vb
  ike_wire_counters
}
# Counters on B's veth, before anything of the stack: ESP, ESP-in-UDP (4500
# and above, with a non-zero first word: not IKE), and inner (protected)
# packets that arrive without having been decapsulated (secpath missing).
ike_wire_counters() {
  ip netns exec "$B" nft -f - <<EOF
table netdev wire {
  counter wire_esp {}
  counter wire_espinudp {}
  counter wire_cleartext {}
  chain in {
    type filter hook ingress device "$B_DEV" priority 0; policy accept;
    ip protocol esp counter name wire_esp
    udp dport != 500 udp sport != 500 udp length > 40 @th,64,32 != 0 counter name wire_espinudp
    ip saddr { 198.51.100.0/24, 198.18.1.0/24 } meta secpath missing counter name wire_cleartext
  }
}
EOF
}
wire() {  # wire esp|espinudp|cleartext -> packets
  ip netns exec "$B" nft list counter netdev wire "wire_$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'
}

# ---- our peer ----
# ours_start TAG NS LOCAL REMOTE LOCAL_TS REMOTE_TS CERTNAME [ikepeerctl options...]
# Output in $W/TAG.out; PID in OURS_PID[TAG].
declare -A OURS_PID
ours_start() {
  local tag=$1 ns=$2 local=$3 remote=$4 lts=$5 rts=$6 cn=$7; shift 7
  local p=$W/pki
  "$PEERCTL" --netns "$ns" --name "$tag" --local "$local" --remote "$remote" --local-ts "$lts" --remote-ts "$rts" \
    --cert "$p/$cn.pem" --chain "$p/inter.pem" --key "$p/$cn.key" --ca "$p/root.pem" "$@" > "$W/$tag.out" 2>&1 &
  OURS_PID[$tag]=$!
  PEERS+=($!)
  wait_line "$tag" '^ready ' 20 || fail "$tag did not start"
}
wait_line() {  # wait_line TAG REGEX SECONDS: a line of TAG's output matches
  local i
  for i in $(seq $(($3 * 5))); do
    grep -Eq "$2" "$W/$1.out" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
wait_count() {  # wait_count TAG REGEX N SECONDS: N lines of TAG's output match
  local i
  for i in $(seq $(($4 * 5))); do
    [ "$(grep -Ec "$2" "$W/$1.out" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.2
  done
  return 1
}
# ours_status TAG: ask for the SA list, print the last one
ours_status() {
  local n; n=$(grep -c '^end$' "$W/$1.out" || true)
  kill -USR1 "${OURS_PID[$1]}"
  local i; for i in $(seq 50); do
    [ "$(grep -c '^end$' "$W/$1.out" || true)" -gt "$n" ] && break
    sleep 0.1
  done
  awk '/^sa /{blk=""} /^(sa|child) /{blk=blk $0 "\n"} END{printf "%s", blk}' "$W/$1.out"
}
# field LINE KEY -> value of key=value
# ours_listing TAG: ask for the SA list, print all of its sa/child lines (ours_status: the last SA's only)
ours_listing() {
  ours_status "$1" > /dev/null
  awk '/^end$/ { last = blk; blk = ""; next } /^(sa|child) / { blk = blk $0 "\n" } END { printf "%s", last }' "$W/$1.out"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1" | head -1; }
ours_stop() {  # ours_stop TAG: SIGTERM, wait for a clean exit
  local pid=${OURS_PID[$1]}
  kill -TERM "$pid"
  local i; for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then fail "$1 did not exit on SIGTERM"; fi
  wait "$pid" || fail "$1 exited with status $?"
  grep -q '^exit$' "$W/$1.out" || fail "$1 did not finish its shutdown"
}

# ---- charon ----
# charon_start TAG NS PORT NATT_PORT: daemon with its own strongswan.conf; the
# swanctl.conf is written by the caller to $W/charon-TAG/swanctl/swanctl.conf
# (charon_conf) before charon_load.
declare -A CHARON_PID
charon_start() {
  local tag=$1 ns=$2 d=$W/charon-$1
  mkdir -p "$d/swanctl/x509" "$d/swanctl/x509ca" "$d/swanctl/private"
  rm -f "$d/vici"  # a socket left by an earlier charon of this TAG would pass the wait below at once
  cat > "$d/strongswan.conf" <<EOF
charon {
  load_modular = yes
  port = $3
  port_nat_t = $4
  install_routes = no
  retransmit_tries = 3
  retransmit_timeout = 2.0
  plugins {
    include /etc/strongswan.d/charon/*.conf
    vici { socket = unix://$d/vici }
  }
  journal { default = -1 }
  filelog {
    main {
      path = $d/charon.log
      default = 1
      ike = 2
      knl = 1
      flush_line = yes
    }
  }
}
swanctl {
  socket = unix://$d/vici
  load = pem pkcs1 pkcs8 x509 revocation constraints pubkey openssl random nonce
}
EOF
  cp "$W/pki/root.pem" "$d/swanctl/x509ca/root.pem"
  cp "$W/pki/inter.pem" "$d/swanctl/x509/inter.pem"
  STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$ns" charon-systemd > "$d/stdout" 2>&1 &
  CHARON_PID[$tag]=$!
  CHARONS+=($!)
  local i; for i in $(seq 100); do [ -S "$d/vici" ] && break; sleep 0.1; done
  [ -S "$d/vici" ] || fail "charon $tag did not start: $(tail -5 "$d/stdout" "$d/charon.log" 2>/dev/null)"
  eval "CHARON_NS_$(tr - _ <<<"$tag")=$ns"
}
# charon_conf TAG CERTNAME LOCAL REMOTE REMOTE_PORT PROPOSALS LOCAL_TS REMOTE_TS REMOTE_CN
charon_conf() {
  local d=$W/charon-$1
  cp "$W/pki/$2.pem" "$d/swanctl/x509/$2.pem"
  install -m 600 "$W/pki/$2.key" "$d/swanctl/private/$2.key"
  cat > "$d/swanctl/swanctl.conf" <<EOF
connections {
  lab {
    version = 2
    local_addrs = $3
    remote_addrs = $4
    remote_port = $5
    proposals = $6
    local {
      auth = pubkey
      certs = $2.pem
    }
    remote {
      auth = pubkey
      id = "O=storcrypt-vm, CN=$9"
    }
    children {
      net {
        local_ts = $7
        remote_ts = $8
        esp_proposals = ${10:-aes256gcm16}
        mode = tunnel
        start_action = none
      }
    }
  }
}
EOF
}
swanctl_in() {  # swanctl_in TAG ARGS...
  local tag=$1; shift
  local nsvar="CHARON_NS_$(tr - _ <<<"$tag")"
  # bounded: a swanctl on a socket nobody serves would block the scenario until the guest's timeout
  ip netns exec "${!nsvar}" env STRONGSWAN_CONF="$W/charon-$tag/strongswan.conf" timeout 30 swanctl "$@"
}
charon_load() {
  swanctl_in "$1" --load-all --noprompt --file "$W/charon-$1/swanctl/swanctl.conf" > "$W/charon-$1/load.out" 2>&1 \
    || fail "swanctl --load-all ($1): $(cat "$W/charon-$1/load.out")"
}
charon_sas() { swanctl_in "$1" --list-sas; }
charon_wait_established() {  # charon_wait_established TAG SECONDS
  local i; for i in $(seq $(($2 * 5))); do
    charon_sas "$1" 2>/dev/null | grep -q 'INSTALLED, TUNNEL' && return 0
    sleep 0.2
  done
  return 1
}
charon_stop() {
  local pid=${CHARON_PID[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  local i; for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$W/charon-$1/vici"
}

# ---- checks ----
# esp_sa NS SRC DST SPI: the SA is AES-GCM-16 with a 288-bit key (256 + salt)
# and a 128-bit ICV, in tunnel mode; prints it (without the key line).
esp_sa() {
  local s
  s=$(ip -n "$1" xfrm state get src "$2" dst "$3" proto esp spi "0x$4" 2>&1) || fail "$1: no ESP SA $2 -> $3 spi 0x$4: $s"
  grep -Eq "aead rfc4106\(gcm\(aes\)\) 0x[0-9a-f]{72} 128" <<<"$s" \
    || fail "$1: SA 0x$4 is not rfc4106(gcm(aes)) with a 288-bit key and 128-bit ICV"
  grep -q "mode tunnel" <<<"$s" || fail "$1: SA 0x$4 is not in tunnel mode"
  grep -Ev '^\s+(aead|enc|auth-trunc) ' <<<"$s"
}
# One ICMP echo from SRC to DST inside NS.
ping_from() { icmp_echo "$1" "$2" "$3"; }  # ping_from NS SRC DST
# traffic A_INNER B_INNER PORT: 5 pings A -> B and a 256 KiB TCP transfer whose
# SHA-256 B returns, all through the tunnel.
traffic() {
  local i
  for i in 1 2 3 4 5; do ping_from "$A" "$1" "$2" || fail "ping $1 -> $2 ($i) got no answer"; done
  ok "5 ICMP echoes $1 -> $2 answered"
  serve "$3" "$2"
  head -c 262144 /dev/urandom > "$W/payload"
  send_to "$2" "$3" "$W/payload" || fail "TCP transfer $1 -> $2:$3: digest mismatch or no connection"
  ok "256 KiB over TCP $1 -> $2:$3, SHA-256 matches"
}
# esp_flow PORT KIND A_LOCAL A_PEER B_PEER B_LOCAL: traffic() A -> B through
# the CHILD_SA with SPIs $SPI_OUT (A -> B) and $SPI_IN (B -> A), counted by
# A's SAs (between A_LOCAL and A_PEER, as A sees the outer addresses) and
# B's (B_PEER and B_LOCAL: they differ behind a NAT) and as KIND (esp or
# espinudp) on B's wire; no protected packet may arrive at B in clear.
esp_flow() {
  local k0 c0 a_out0 b_in0 b_out0 a_in0
  k0=$(wire "$2") c0=$(wire cleartext)
  a_out0=$(sa_packets "$A" "$3" "$4" "$SPI_OUT") b_in0=$(sa_packets "$B" "$5" "$6" "$SPI_OUT")
  b_out0=$(sa_packets "$B" "$6" "$5" "$SPI_IN") a_in0=$(sa_packets "$A" "$4" "$3" "$SPI_IN")
  traffic 198.51.100.1 203.0.113.1 "$1"
  # 5 echo requests + the TCP segments A -> B; 5 replies + acks/digest B -> A.
  at_least "A out SA packets" $(($(sa_packets "$A" "$3" "$4" "$SPI_OUT") - a_out0)) 10
  at_least "B in SA packets" $(($(sa_packets "$B" "$5" "$6" "$SPI_OUT") - b_in0)) 10
  at_least "B out SA packets" $(($(sa_packets "$B" "$6" "$5" "$SPI_IN") - b_out0)) 6
  at_least "A in SA packets" $(($(sa_packets "$A" "$4" "$3" "$SPI_IN") - a_in0)) 6
  at_least "$2 packets on B's wire" $(($(wire "$2") - k0)) 10
  [ "$(wire cleartext)" = "$c0" ] || fail "protected packets arrived at B in clear: $(wire cleartext) (was $c0)"
  ok "no protected packet in clear on B's wire"
}
# sa_packets NS SRC DST SPI -> packets the SA has processed (in or out)
sa_packets() {
  ip -s -n "$1" xfrm state get src "$2" dst "$3" proto esp spi "0x$4" \
    | awk '/lifetime current:/{f=1} f && match($0, /[0-9]+\(packets\)/){print substr($0, RSTART, RLENGTH - 9); exit}'
}
# at_least WHAT VALUE MIN
at_least() { [ "${2:-0}" -ge "$3" ] || fail "$1: $2 < $3"; ok "$1: $2 (>= $3)"; }
# no_ike_objects NS: nothing of ours (reqids 0x6c000-0x7bfff) left in NS
# our_reqids NS state|policy: the reqids of our IKE range (0x6c000-0x7bfff), one per object
our_reqids() {
  local r
  for r in $(ip -n "$1" xfrm "$2" | sed -n 's/.* reqid \([0-9]*\) .*/\1/p'); do
    if [ "$r" -ge $((0x6c000)) ] && [ "$r" -le $((0x7bfff)) ]; then echo "$r"; fi
  done
}
# our_indexes NS: the policy indexes of our IKE range, sorted, on one line
our_indexes() {
  local i
  for i in $(ip -s -n "$1" xfrm policy | sed -n 's/.*index \([0-9]*\).*/\1/p'); do
    if [ "$i" -ge $((0xf8000000)) ]; then echo "$i"; fi
  done | sort -n | tr '\n' ' '
}
no_ike_objects() {
  local left
  left=$({ our_reqids "$1" state; our_reqids "$1" policy; } | grep -c . || true)
  [ "$left" = 0 ] || fail "$1: $left XFRM objects with our reqids left after teardown"
}
# probe_start NS SRC DST: ICMP echoes SRC -> DST at 100/s (numbered) in the
# background until probe_stop, which leaves "sent N received M" in
# $W/probe.out once the last replies had 3 s to come back.
probe_start() {
  rm -f "$W/probe.stop" "$W/probe.out"
  ip netns exec "$1" /usr/bin/python3 -c '
import os, select, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.bind((sys.argv[1], 0))
ident, stop = os.getpid() & 0xffff, sys.argv[3]
sent, got, nxt, end = 0, set(), time.monotonic(), None
while end is None or time.monotonic() < end:
    now = time.monotonic()
    if end is None and os.path.exists(stop): end = now + 3
    if end is None and now >= nxt:
        sent += 1; nxt += 0.01
        h = struct.pack("!BBHHH", 8, 0, 0, ident, sent & 0xffff) + b"storcrypt-rekey-probe!"  # even length: csum() sums 16-bit words
        s.sendto(h[:2] + struct.pack("!H", csum(h)) + h[4:], (sys.argv[2], 0))
    r, _, _ = select.select([s], [], [], max(0.0, min(nxt - time.monotonic(), 0.01)) if end is None else 0.05)
    if r:
        d, src = s.recvfrom(2048); i = d[(d[0] & 0x0f) * 4:]
        if i[0] == 0 and struct.unpack("!H", i[4:6])[0] == ident and src[0] == sys.argv[2]:
            got.add(struct.unpack("!H", i[6:8])[0])
print("sent %d received %d" % (sent, len(got)), flush=True)
' "$2" "$3" "$W/probe.stop" > "$W/probe.out" 2>&1 &
  PROBE_PID=$!
  PIDS+=($!)
}
probe_stop() {  # not in $(...): it waits for a child of this shell
  touch "$W/probe.stop"
  wait "$PROBE_PID" || fail "probe stream failed: $(cat "$W/probe.out")"
}
