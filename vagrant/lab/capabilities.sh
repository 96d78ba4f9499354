#!/bin/bash
# Print what this kernel offers the data paths: ESP, XFRM, AEAD, dm-crypt.
# Runs on the host, inside the kernel VM, and on Vagrant machines.
set -u
in_vm=${STORCRYPT_IN_VM:-0}
if [ "$in_vm" = 1 ]; then
  modprobe -a esp4 esp6 xfrm_user dm-mod dm-crypt xts gcm loop veth 2>/dev/null || true
fi
have() { printf '  %-34s %s\n' "$1" "$2"; }
modstate() {  # module name -> builtin/loaded/loadable/absent
  local m=$1
  if [ -d "/sys/module/$m" ]; then echo "loaded"; return; fi
  if modprobe -n "$m" >/dev/null 2>&1 && [ -d "/lib/modules/$(uname -r)" ]; then echo "loadable"; return; fi
  echo "absent"
}
echo "kernel $(uname -r) capabilities:"
have "xfrm netlink (xfrm_user)" "$( [ -e /proc/net/xfrm_stat ] && echo present || modstate xfrm_user)"
have "ESP over IPv4 (esp4)" "$(modstate esp4)"
have "ESP over IPv6 (esp6)" "$(modstate esp6)"
# /proc/crypto lists a template instance only once something has used it.
crypto() {  # algorithm, template module
  if grep -q "name *: $1\$" /proc/crypto; then echo "registered"; else echo "template module $2: $(modstate "$2")"; fi
}
have "AEAD rfc4106(gcm(aes))" "$(crypto 'rfc4106(gcm(aes))' gcm)"
have "device-mapper (dm-mod)" "$( [ -e /dev/mapper/control ] && echo present || modstate dm_mod)"
have "dm-crypt" "$(modstate dm_crypt)"
have "xts(aes)" "$(crypto 'xts(aes)' xts)"
have "loop devices" "$( [ -e /dev/loop-control ] && echo present || modstate loop)"
have "network namespaces" "$( [ -e /proc/self/ns/net ] && echo present || echo absent)"
