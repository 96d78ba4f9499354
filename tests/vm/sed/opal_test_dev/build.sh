#!/usr/bin/env bash
# Build the test-only opal_test_dev module for the kernel the VM tier boots
# (the same choice as tests/vm/harness/vmrun.sh: the newest /lib/modules/*
# with a /boot/vmlinuz and ESP modules), against that kernel's Debian headers
# (linux-headers-amd64, installed by scripts/setup.sh).
#   build.sh OUT_DIR      -> OUT_DIR/opal_test_dev.ko
# Without the headers it says so and exits 0 (the VM scenario then reports
# the missing module); a compile error fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
kver=""
for d in $(ls -1d /lib/modules/* 2>/dev/null | sort -V -r); do
  v=$(basename "$d")
  if [ -f "/boot/vmlinuz-$v" ] && [ -n "$(find "$d/kernel/net/ipv4" -name 'esp4.ko*' 2>/dev/null | head -1)" ]; then
    kver=$v; break
  fi
done
if [ -z "$kver" ] || [ ! -e "/lib/modules/$kver/build/Makefile" ]; then
  echo "opal_test_dev: no headers for the VM kernel ${kver:-(none)}: install linux-headers-amd64 (scripts/setup.sh); module not built" >&2
  exit 0
fi
mkdir -p "$out/src"
cp "$here/opal_test_dev.c" "$out/src/"
echo 'obj-m := opal_test_dev.o' > "$out/src/Kbuild"
make -s -C "/lib/modules/$kver/build" M="$out/src" modules >/dev/null
cp "$out/src/opal_test_dev.ko" "$out/opal_test_dev.ko.tmp"
mv "$out/opal_test_dev.ko.tmp" "$out/opal_test_dev.ko"
echo "$kver" > "$out/kernel-version"
