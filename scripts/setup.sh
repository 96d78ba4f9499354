#!/usr/bin/env bash
# Install every build, test and lab dependency of storcrypt from Debian 12
# packages. Idempotent: installs only what is missing. Run as root.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-14 clang lld libclang-rt-14-dev clang-format clang-tidy git
  # libraries
  libnl-3-dev libnl-xfrm-3-dev libnl-route-3-dev libcryptsetup-dev libdevmapper-dev libblkid-dev libssl-dev openssl
  libsqlite3-dev sqlite3 libkmod-dev kmod zlib1g-dev libasio-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest
  # kernel VM tier
  qemu-system-x86 linux-image-amd64 busybox-static cpio gzip
  # the SED test bed module (tests/vm/sed) is built against the VM kernel's headers
  linux-headers-amd64
  # real peers and independent readers
  charon-systemd strongswan-swanctl libstrongswan-standard-plugins python3-pykmip python3 cryptsetup-bin
  iproute2 util-linux e2fsprogs procps psmisc jq xxd
  # NAT between the sites of the IKE interop vm test (nftables masquerade)
  nftables
  # man(1): the man-page render test (controller_docs_test) checks storcrypt(8)/storcryptd(8)
  man-db
  # foreign signatures the at-rest guards must refuse (tests/vm: an LVM PV on a loop device)
  lvm2
  # cores of storcryptd/storcrypt searched for secrets (gcore)
  gdb
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages with apt-get)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all ${#PACKAGES[@]} packages present"
fi

# The API socket's group (root/group only access).
getent group storcrypt >/dev/null || groupadd --system storcrypt
