#!/bin/bash
# Kernel smoke: a LUKS2 volume (aes-xts-plain64, 512-bit key) on a loop-backed
# file is formatted, opened, written, closed, reopened; data reads back identical.
set -euo pipefail
modprobe -a loop dm-mod dm-crypt xts
work=/tmp/luks; mkdir -p $work
truncate -s 64M $work/disk.img
head -c 32 /dev/urandom > $work/key
cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 \
  --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file $work/key $work/disk.img
cryptsetup luksDump $work/disk.img | tee $work/dump | grep -E 'cipher:|Cipher key:' 
grep -q 'aes-xts-plain64' $work/dump
grep -q '512 bits' $work/dump
cryptsetup open --key-file $work/key $work/disk.img smoke
[ -b /dev/mapper/smoke ] || { echo "/dev/mapper/smoke is not a block device"; exit 1; }
head -c 8M /dev/urandom > $work/data
dd if=$work/data of=/dev/mapper/smoke bs=1M oflag=direct status=none
cryptsetup close smoke
cryptsetup open --key-file $work/key $work/disk.img smoke
dd if=/dev/mapper/smoke of=$work/back bs=1M count=8 iflag=direct status=none
cryptsetup close smoke
cmp $work/data $work/back
# and the ciphertext on disk is not the plaintext
! cmp -s <(dd if=$work/disk.img bs=1M skip=16 count=8 status=none) $work/data
echo "LUKS2 round trip OK"
