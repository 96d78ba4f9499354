#!/bin/bash
# kmodule-glue on Debian's kernel: the probe loads what is missing and reports
# every IPsec and at-rest feature usable; lsmod and /proc/crypto are the judges.
source "$(dirname "$0")/lib.sh"
trap 'rm -rf "$KEYDIR"' EXIT
rmmod esp4 2>/dev/null || true
if grep -q '^esp4 ' /proc/modules; then echo "esp4 still loaded before the probe"; fi
"$XFRMCTL" probe | tee /tmp/sc-probe.txt
grep -q '^esp4 ' /proc/modules || { echo "probe did not load esp4"; exit 1; }
grep -q '^ok   esp4: module esp4 loaded' /tmp/sc-probe.txt || { echo "esp4 not reported loaded"; exit 1; }
grep -q ': rfc4106(gcm(aes))$' /proc/crypto || { echo "rfc4106(gcm(aes)) not instantiated"; exit 1; }
grep -q ': xts(aes)$' /proc/crypto || { echo "xts(aes) not instantiated"; exit 1; }
# The NULL cipher of integrity-only ESP (Service = ESP-INTEGRITY).
grep -q '^ok   ecb(cipher_null): ' /tmp/sc-probe.txt || { echo "ecb(cipher_null) not reported usable"; exit 1; }
grep -q ': ecb(cipher_null)$' /proc/crypto || { echo "ecb(cipher_null) not in /proc/crypto"; exit 1; }
echo "probe OK"
