#!/bin/bash
# The two-site lab. site-a and site-b are network namespaces (Vagrant
# machines when run there). Today it shows, each step through storcrypt's own
# libraries and judged by the kernel and the stock tools:
#   1. the kernel report of kmodule-glue (what the data paths need, loaded);
#   2. an ordered IPsec policy list committed on site-a, imported swapped on
#      site-b with exported named keys: protected ports flow as ESP, bypassed
#      ports in clear, discarded traffic dropped (storcrypt::policy);
#   3. the replication link: TCP through tunnel-mode ESP AES-256-GCM over IPv4
#      and IPv6, SAs and policies programmed through storcrypt::netlink;
#   4. an encrypted volume on site-a: LUKS2 XTS-AES-256 keyed from local key
#      media, read back by `cryptsetup` as an independent reader (storcrypt::dm);
#   5. storcryptd and the storcrypt command: system doctor, certificates,
#      truststore, events (when the daemon is built).
# It grows with every feature (partnerships with IKEv2, KMIP-held keys).
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
export STORCRYPT_SOURCE_DIR=$src STORCRYPT_BUILD_DIR=$build

banner() { echo; echo "lab: $*"; }

if [ -x "$build/tests/vm/netlink/xfrmctl" ]; then
  banner "kernel capabilities as storcrypt sees them (kmodule-glue)"
  "$build/tests/vm/netlink/xfrmctl" probe
fi

if [ -x "$build/tests/vm/policy/storcrypt_policyctl" ]; then
  banner "ordered policy list between site-a and site-b (BYPASS / DISCARD / PROTECT)"
  bash "$src/tests/vm/policy/two_namespaces.sh"
fi

if [ -x "$build/tests/vm/netlink/xfrmctl" ]; then
  banner "replication link site-a <-> site-b through tunnel-mode ESP (our XFRM layer)"
  bash "$src/tests/vm/netlink/tunnel_traffic.sh"
else
  banner "replication link site-a <-> site-b through ESP (ip xfrm)"
  bash "$src/tests/vm/smoke/esp_tunnel.sh"
fi

if [ -x "$build/tests/vm/dm/storcrypt_volctl" ]; then
  banner "encrypted volume on site-a keyed from local key media"
  bash "$src/tests/vm/dm/basic.sh"
else
  banner "encrypted volume on site-a (cryptsetup)"
  bash "$src/tests/vm/smoke/luks_loop.sh"
fi

if [ -x "$src/vagrant/lab/daemon.sh" ] && [ -x "$build/controller/storcryptd" ]; then
  banner "storcryptd and the storcrypt command"
  bash "$src/vagrant/lab/daemon.sh"
fi
if [ -x "$build/controller/storcryptd" ]; then
  banner "the IPsec policy list through storcryptd on both sites (storcrypt policy|key|ipsec)"
  bash "$src/tests/vm/controller/ipsec_daemon.sh"
fi
banner "done"
