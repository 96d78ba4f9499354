#!/bin/bash
# Issue 13: storcryptd runs under systemd with the shipped unit
# (controller/systemd/storcryptd.service, sandboxing included) and does real
# work: the guest boots with systemd as PID 1 (vmrun.sh --systemd).
#   - `systemctl start` returns once the daemon is ready (Type=notify);
#   - the socket has the unit's/config's group and mode (0660, storcrypt) and
#     refuses a user outside the group;
#   - key media mounted under /media and /mnt and the header backup directory
#     /var/backups/storcrypt are written through the sandbox (ProtectSystem=strict);
#   - a volume is created, written, closed, reopened and read back; the XFRM
#     path (netlink) works: ipsec enable/status/disable;
#   - `systemctl stop` is clean: result success, exit status 0, socket removed,
#     well inside TimeoutStopSec.
set -euo pipefail
src=${STORCRYPT_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
build=${STORCRYPT_BUILD_DIR:-$src/build}
LOOP=""
fail() {
  echo "FAIL: $*"
  echo "--- journal of storcryptd.service"
  journalctl -u storcryptd --no-pager -o cat 2>/dev/null | tail -40 || true
  exit 1
}
cleanup() {
  storcrypt volume close sdvol >/dev/null 2>&1 || true
  systemctl stop storcryptd 2>/dev/null || true
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
}
trap cleanup EXIT

[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd (boot with vmrun.sh --systemd)"

echo "== install the binaries, the shipped unit and the example configuration"
install -m 0755 "$build/controller/storcryptd" /usr/sbin/storcryptd
install -m 0755 "$build/controller/storcrypt" /usr/sbin/storcrypt
install -m 0644 "$src/controller/systemd/storcryptd.service" /etc/systemd/system/storcryptd.service
mkdir -p /etc/storcrypt
install -m 0644 "$src/controller/etc/storcrypt.conf" /etc/storcrypt/storcrypt.conf
getent group storcrypt >/dev/null || groupadd --system storcrypt
# Removable key media are mounted under /media or /mnt.
mkdir -p /media/keys1 /mnt/keys2 /var/backups/storcrypt
mount -t tmpfs -o size=8m km1 /media/keys1
mount -t tmpfs -o size=8m km2 /mnt/keys2
cat > /etc/storcrypt/at-rest.json <<'JSON'
{"system_id": "systemd-lab", "media_dirs": ["/media/keys1", "/mnt/keys2"], "desired_copies": 2,
 "header_backup_dir": "/var/backups/storcrypt"}
JSON
modprobe -a loop dm-mod dm-crypt 2>/dev/null || true
truncate -s 48M /root/sd-disk.img
LOOP=$(losetup --find --show /root/sd-disk.img)
systemctl daemon-reload

echo "== systemctl start"
systemctl start storcryptd || fail "systemctl start storcryptd failed"
[ "$(systemctl is-active storcryptd)" = active ] || fail "storcryptd is not active"
sock=/run/storcrypt/storcrypt.sock
[ -S "$sock" ] || fail "no socket at $sock"
[ "$(stat -c '%a %U %G' "$sock")" = "660 root storcrypt" ] || fail "socket is $(stat -c '%a %U %G' "$sock"), want 660 root storcrypt"
if setpriv --reuid=nobody --regid=nogroup --clear-groups storcrypt system status >/dev/null 2>&1; then
  fail "a user outside group storcrypt used the API"
fi
storcrypt system status >/dev/null || fail "root cannot use the API"

echo "== key media under /media and /mnt, header backup, a volume"
storcrypt keymedia init /media/keys1 || fail "keymedia init /media/keys1 (under ProtectSystem=strict)"
storcrypt keymedia init /mnt/keys2 || fail "keymedia init /mnt/keys2 (under ProtectSystem=strict)"
storcrypt volume create "$LOOP" sdvol --key-id sdkey || fail "volume create through the sandboxed daemon"
[ "$(find /media/keys1 /mnt/keys2 -type f -name '*sdkey*' | wc -l)" -ge 2 ] \
  || fail "the key is not on both media: $(ls -la /media/keys1 /mnt/keys2)"
ls /var/backups/storcrypt/storcrypt-*.luks2hdr >/dev/null 2>&1 || fail "no LUKS header backup in /var/backups/storcrypt"
[ "$(storcrypt --json volume show sdvol | jq -r .result.state)" = open ] || storcrypt volume open sdvol
head -c 2M /dev/urandom > /root/sd-data
dd if=/root/sd-data of=/dev/mapper/sdvol bs=1M oflag=direct status=none
storcrypt volume close sdvol
[ ! -e /dev/mapper/sdvol ] || fail "volume still mapped after close"
storcrypt volume open sdvol || fail "volume open through the sandboxed daemon"
cmp <(head -c 2M /dev/mapper/sdvol) /root/sd-data || fail "data read back differs"
storcrypt volume close sdvol

echo "== XFRM through the sandbox"
storcrypt key create sd-k1 --algorithm AES-GCM-256 || fail "key create (key store in the state directory)"
cat > /root/sd-list.txt <<'LIST'
Name = sd-prot
Direction = outbound
LocalAddress = 192.0.2.1
RemoteAddress = 198.51.100.2
Protocol = TCP
RemotePort = 9000
Action = PROTECT
Service = ESP-INTEGRITY-CONFIDENTIALITY
Mode = transport
SPI = 0x2000
EncryptionAlgorithm = AES-GCM-256
EncryptionKey = sd-k1

Name = sd-out-all
Direction = outbound
Action = BYPASS

Name = sd-in-all
Direction = inbound
Action = BYPASS
LIST
storcrypt policy import /root/sd-list.txt || fail "policy import"
storcrypt policy commit || fail "policy commit"
storcrypt ipsec enable || fail "ipsec enable"
ip xfrm state get src 192.0.2.1 dst 198.51.100.2 proto esp spi 0x2000 | grep -q 'rfc4106(gcm(aes))' \
  || fail "the SA of sd-prot is not in the kernel: $(ip xfrm state)"
storcrypt ipsec status >/dev/null || fail "ipsec status"
storcrypt ipsec disable || fail "ipsec disable"
[ -z "$(ip xfrm state)" ] || fail "SAs left after disable: $(ip xfrm state)"

echo "== systemctl stop"
systemctl stop storcryptd
[ "$(systemctl show -p Result --value storcryptd)" = success ] \
  || fail "stop result: $(systemctl show -p Result --value storcryptd)"
[ "$(systemctl show -p ExecMainStatus --value storcryptd)" = 0 ] \
  || fail "exit status on stop: $(systemctl show -p ExecMainStatus --value storcryptd)"
[ ! -e "$sock" ] || fail "socket left behind after stop"
if journalctl -u storcryptd --no-pager -o cat | grep -Ei 'permission denied|read-only file system|operation not permitted'; then
  fail "the sandbox refused something (journal lines above)"
fi
echo "PASS: storcryptd under systemd with the shipped unit"
