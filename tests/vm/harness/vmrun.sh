#!/usr/bin/env bash
# Boot Debian's stock kernel (linux-image-amd64: ESP, dm-crypt, loop as modules)
# under QEMU with the host root filesystem shared read-only plus a tmpfs overlay,
# run one or more scenario scripts as root inside it, stream the console to a
# log, and exit with the scenarios' combined status.
#
#   vmrun.sh --build-dir DIR --name NAME [--timeout SECONDS] [--memory MiB] [--systemd] SCENARIO...
#
# --systemd boots the shared root with systemd as PID 1 (the host's
# /lib/systemd/systemd) and runs the scenarios from a oneshot unit, so a
# scenario can start services with systemctl under their real unit files
# (sandboxing included). Without it the scenarios run from the initramfs' init
# in a chroot, with no service manager (faster to boot).
#
# Each scenario is a bash script; exit 0 = pass. Inside the guest the
# environment has STORCRYPT_BUILD_DIR, STORCRYPT_SOURCE_DIR and a sane PATH; the
# working directory is the build directory. Several scenarios share one boot.
# Env: STORCRYPT_VM_ACCEL=tcg|kvm overrides the accelerator probe.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../../.." && pwd)
build_dir="" name="" timeout=900 memory=2048 init=script
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --systemd) init=systemd; shift ;;
    -*) echo "vmrun: unknown option $1" >&2; exit 2 ;;
    *) scenarios+=("$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"); shift ;;
  esac
done
[ -n "$build_dir" ] && [ -n "$name" ] && [ "${#scenarios[@]}" -gt 0 ] || {
  echo "usage: vmrun.sh --build-dir DIR --name NAME [--timeout S] [--memory MiB] [--systemd] SCENARIO..." >&2; exit 2; }
build_dir=$(cd "$build_dir" && pwd)

fail() { echo "vmrun: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (QEMU's 9p passthrough share of / must read every file)"
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing: run scripts/setup.sh"
[ -x /bin/busybox ] || fail "busybox-static missing: run scripts/setup.sh"
[ "$init" = script ] || [ -x /lib/systemd/systemd ] || fail "--systemd: /lib/systemd/systemd missing (package systemd)"

# The newest installed Debian kernel that has ESP as a module.
kver=""
for d in $(ls -1d /lib/modules/* 2>/dev/null | sort -V -r); do
  v=$(basename "$d")
  if [ -f "/boot/vmlinuz-$v" ] && [ -n "$(find "$d/kernel/net/ipv4" -name 'esp4.ko*' 2>/dev/null | head -1)" ]; then
    kver=$v; break
  fi
done
[ -n "$kver" ] || fail "no /boot/vmlinuz-* with ESP modules: install linux-image-amd64 (scripts/setup.sh)"

vmdir="$build_dir/vm"
mkdir -p "$vmdir"

# --- initramfs: busybox + the modules to mount the shared root (built once per kernel) ---
initrd="$vmdir/initrd-$kver-v3.gz"  # bump the suffix when init changes
build_initrd() {
  local tmp
  tmp=$(mktemp -d "$vmdir/initrd.XXXXXX")
  mkdir -p "$tmp"/{bin,mods,proc,sys,dev,host,rw,newroot}
  cp /bin/busybox "$tmp/bin/busybox"
  for l in sh mount insmod chroot sed mkdir poweroff cat echo sleep ln grep umount switch_root; do ln -s busybox "$tmp/bin/$l"; done
  : > "$tmp/mods/order"
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -S "$kver" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r f; do
    case "$f" in
      *.ko.xz) xz -dc "$f" > "$tmp/mods/$(basename "${f%.xz}")"; echo "$(basename "${f%.xz}")" >> "$tmp/mods/order" ;;
      *.ko.zst) zstd -qdc "$f" > "$tmp/mods/$(basename "${f%.zst}")"; echo "$(basename "${f%.zst}")" >> "$tmp/mods/order" ;;
      *) cp "$f" "$tmp/mods/"; echo "$(basename "$f")" >> "$tmp/mods/order" ;;
    esac
  done
  cat > "$tmp/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
while read f; do insmod /mods/$f; done < /mods/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || echo "VMRUN: 9p mount failed"
mount -t tmpfs rw /rw; mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || echo "VMRUN: overlay failed"
mount --move /proc /newroot/proc; mount --move /sys /newroot/sys; mount --move /dev /newroot/dev
SCRIPT=$(sed -n 's/.*testscript=\([^ ]*\).*/\1/p' /newroot/proc/cmdline)
if grep -q 'vmrun_init=systemd' /newroot/proc/cmdline; then
  # systemd as PID 1: the default target runs the scenarios once, then powers off.
  u=/newroot/etc/systemd/system
  mkdir -p $u
  printf '#!/bin/sh\nmkdir -p /run/netns /run/lock\n/bin/bash %s\necho GUEST_EXIT=$?\nsync\n/bin/busybox poweroff -f\n' "$SCRIPT" > /newroot/etc/vmrun-scenarios
  printf '[Unit]\nDescription=vmrun scenarios\nAfter=basic.target\n[Service]\nType=oneshot\nExecStart=/bin/sh /etc/vmrun-scenarios\nStandardOutput=tty\nStandardError=tty\nTTYPath=/dev/ttyS0\n' > $u/vmrun.service
  printf '[Unit]\nDescription=vmrun\nRequires=basic.target vmrun.service\nAfter=basic.target vmrun.service\nAllowIsolate=yes\n' > $u/vmrun.target
  ln -sf vmrun.target $u/default.target
  umount /newroot/proc /newroot/sys /newroot/dev
  exec switch_root /newroot /lib/systemd/systemd
fi
exec chroot /newroot /bin/sh -c "mount -t tmpfs r /run; mkdir -p /run/netns /run/lock; /bin/bash $SCRIPT; echo GUEST_EXIT=\$?; poweroff -f"
INIT
  chmod +x "$tmp/init"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$tmp"
}
(
  flock 9
  [ -s "$initrd" ] || build_initrd
) 9>"$vmdir/initrd.lock"

# --- the guest-side wrapper: runs every scenario, reports each on the console ---
rundir="$vmdir/$name"
mkdir -p "$rundir"
guest="$rundir/guest.sh"
{
  echo '#!/bin/bash'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo "export STORCRYPT_BUILD_DIR='$build_dir' STORCRYPT_SOURCE_DIR='$source_dir' STORCRYPT_IN_VM=1 HOME=/root"
  echo "export CI='${CI:-}' STORCRYPT_REQUIRE_ALL='${STORCRYPT_REQUIRE_ALL:-}'"
  # Scenario knobs (e.g. STORCRYPT_IKE_REKEYS=100) reach the guest as set on the host.
  for v in $(compgen -e | grep -E '^STORCRYPT_IKE_' || true); do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  # A fresh tmpfs on /tmp for the scenarios; the build and source trees stay
  # visible at their own paths even when they live under the host's /tmp.
  echo 'mkdir -p /run/hosttmp && mount --bind /tmp /run/hosttmp && mount -t tmpfs t /tmp'
  for d in "$build_dir" "$source_dir"; do
    case "$d" in
      /tmp/*) echo "mkdir -p '$d' && mount --bind '/run/hosttmp/${d#/tmp/}' '$d'" ;;
    esac
  done
  echo "cd '$build_dir'"
  echo 'echo "VMRUN: guest up, kernel $(uname -r)"'
  echo 'rc=0'
  for s in "${scenarios[@]}"; do
    sname=$(basename "$s" .sh)
    echo "echo 'VMRUN: ===== scenario $sname ====='"
    echo "timeout $((timeout - 30)) /bin/bash -eo pipefail '$s' 2>&1 | sed -u 's/^/[$sname] /'"
    echo "r=\${PIPESTATUS[0]}"
    echo "if [ \$r -eq 0 ]; then echo 'VMRUN: SCENARIO $sname PASS'; else echo \"VMRUN: SCENARIO $sname FAIL rc=\$r\"; rc=1; fi"
  done
  echo 'exit $rc'
} > "$guest"
chmod +x "$guest"

# --- accelerator: KVM hangs on some hosts although /dev/kvm exists; probe once ---
accel=${STORCRYPT_VM_ACCEL:-}
if [ -z "$accel" ]; then
  if [ -f "$vmdir/accel" ]; then
    accel=$(cat "$vmdir/accel")
  else
    accel=tcg
    if [ -c /dev/kvm ] && [ -w /dev/kvm ]; then
      probe="$vmdir/probe.sh"; printf '#!/bin/bash\nexit 0\n' > "$probe"; chmod +x "$probe"
      if timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 512 -nographic -no-reboot -net none \
           -kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
           -append "console=ttyS0 quiet panic=-1 testscript=$probe" \
           -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
           2>/dev/null | grep 'GUEST_EXIT=0' > /dev/null; then
        accel=kvm
      fi
    fi
    echo "$accel" > "$vmdir/accel"
  fi
fi
cpu=max
[ "$accel" = kvm ] && cpu=host

log="$rundir/console.log"
echo "vmrun: kernel $kver, accel $accel, ${#scenarios[@]} scenario(s), console log $log"

# QEMU never outlives this run. `timeout` puts QEMU in its own process group,
# so a Ctrl-C, ctest killing or timing out this script, or ctest itself dying
# would otherwise leave it running until the guest timeout. QEMU writes its
# pid to $pidfile; kill_qemu kills that pid only while its command line still
# names this pid file (no stale or reused pid is ever hit).
#  - TERM/INT/HUP: the trap kills QEMU and exits 128+signal. The pipeline runs
#    in the background and the script `wait`s, so the trap runs at once (bash
#    defers traps until a foreground command ends).
#  - SIGKILL of this script, or its parent (ctest) dying: a watchdog polls
#    once a second and kills QEMU when this script is gone or re-parented.
pidfile="$rundir/qemu.pid" rcfile="$rundir/qemu.rc"
rm -f "$pidfile" "$rcfile"
kill_qemu() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  if tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$pidfile"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
trap 'kill_qemu; exit 129' HUP
trap 'kill_qemu; exit 130' INT
trap 'kill_qemu; exit 143' TERM
trap 'kill_qemu' EXIT
me=$$ parent=$PPID
(
  trap - TERM EXIT
  trap '' HUP INT  # a terminal's Ctrl-C reaches the watchdog too: outlive the script
  while read -r _ _ state ppid _ < "/proc/$me/stat" 2>/dev/null && [ "$state" != Z ] && [ "$ppid" = "$parent" ]; do
    sleep 1
  done
  kill_qemu
) </dev/null >/dev/null 2>&1 &
watchdog=$!

set +e
{
  timeout --kill-after=10 "$timeout" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "$memory" -smp 2 \
    -nographic -no-reboot -net none -pidfile "$pidfile" \
    -kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 testscript=$guest vmrun_init=$init" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
    </dev/null 2>&1
  echo $? > "$rcfile"
} | tr -d '\r' | tee "$log" | grep --line-buffered -E '^(VMRUN:|\[)' &
wait $!
qrc=$(cat "$rcfile" 2>/dev/null || echo 1)
set -e
kill "$watchdog" 2>/dev/null || true

if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
  echo "vmrun: guest timed out after ${timeout}s (console log: $log)" >&2
  exit 1
fi
status=$(sed -n 's/.*GUEST_EXIT=\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ -z "$status" ]; then
  echo "vmrun: guest ended without reporting a status; last console lines:" >&2
  tail -30 "$log" >&2
  exit 1
fi
passed=$(grep -c 'VMRUN: SCENARIO .* PASS' "$log" || true)
failed=$(grep -c 'VMRUN: SCENARIO .* FAIL' "$log" || true)
echo "vmrun: $name: $passed scenario(s) passed, $failed failed"
exit "$status"
