#!/bin/bash
# dm-crypt throughput with and without no_read_workqueue/no_write_workqueue,
# 4 KiB-sector aes-xts-plain64, direct I/O through the mapping; ratio.
. "$STORCRYPT_SOURCE_DIR/tests/vm/dm/lib.sh"
now() { date +%s%N; }
MB=32
dev=$(newdisk t 64M)
vc create "$dev" vol1 --key-id key1 > /dev/null 2>&1
run() {  # $1 = label, rest = extra volctl options
  local label=$1; shift
  vc "$@" open "$dev" 2>/dev/null
  dmsetup table vol1 | sed 's/ [0-9a-f:]*:logon:[^ ]*//' | cut -c1-160
  local t w r
  t=$(now); dd if=/dev/zero of=/dev/mapper/vol1 bs=1M count=$MB oflag=direct status=none; w=$(( ($(now) - t) / 1000000 ))
  t=$(now); dd if=/dev/mapper/vol1 of=/dev/null bs=1M count=$MB iflag=direct status=none; r=$(( ($(now) - t) / 1000000 ))
  vc close vol1
  echo "$label $w $r"
}
for round in 1 2; do
  run default >> "$W/res"
  run no-workqueue --no-workqueue >> "$W/res"
done
cat "$W/res"
python3 - "$W/res" $MB <<'PY'
import sys
mb = int(sys.argv[2]); rows = [l.split() for l in open(sys.argv[1]) if l.strip() and l.split()[0] in ("default", "no-workqueue")]
agg = {}
for label, w, r in rows:
    a = agg.setdefault(label, [0, 0, 0]); a[0] += int(w); a[1] += int(r); a[2] += 1
for label, (w, r, n) in agg.items():
    print("BENCH throughput %-13s write %6.1f MiB/s  read %6.1f MiB/s" % (label, mb * n * 1000 / max(w, 1), mb * n * 1000 / max(r, 1)))
d, q = agg["default"], agg["no-workqueue"]
print("BENCH throughput ratio no-workqueue/default: write %.2f  read %.2f" % (d[0] / max(q[0], 1), d[1] / max(q[1], 1)))
PY
