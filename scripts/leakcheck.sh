#!/usr/bin/env bash
# Tests clean up what they start. scripts/test calls this before and after
# ctest; "after" fails when the suite left behind something that was not there
# before:
#   - a process run from the build tree, or a pykmip-server, charon or qemu
#     process (zombies, already dead, do not count),
#   - a network namespace (ip netns), a loop device, a device-mapper device,
#   - a mount (in this mount namespace).
#
#   scripts/leakcheck.sh before STATE_FILE BUILD_DIR
#   scripts/leakcheck.sh after  STATE_FILE BUILD_DIR
#
# Exit status of "after": 0 nothing left behind, 1 leftovers (listed on stderr).
set -euo pipefail

usage() {
  echo "usage: scripts/leakcheck.sh before|after STATE_FILE BUILD_DIR" >&2
  exit 2
}
[ $# -eq 3 ] || usage
mode=$1 state=$2 build=$3
build=$(cd "$build" 2>/dev/null && pwd -P) || {
  echo "leakcheck: build directory $3 does not exist" >&2
  exit 2
}

# One line per object: "<kind> <identity> <description>". Identities are
# stable across the two snapshots (pid + start time, so a reused pid is new).
snapshot() {
  # Processes: pid, state and command line from ps; the executable from
  # /proc/PID/exe; the start time from /proc/PID/stat (field 22). Zombies are
  # dead already and kernel threads ([name]) are not ours. The bracketed
  # patterns keep this awk from matching its own command line.
  { find /proc/[0-9]*/exe -maxdepth 0 -printf '%h %l\n' 2>/dev/null || true; } >"$state.exe"
  ps -e -o pid=,stat=,args= | awk -v build="$build/" '
    NR == FNR { sub("/proc/", "", $1); exe[$1] = $2; next }
    {
      pid = $1; st = $2
      if (st ~ /^Z/) next
      args = $0; sub(/^ *[0-9]+ +[^ ]+ +/, "", args)
      if (args ~ /^\[/) next
      if (index(exe[pid], build) != 1 && args !~ /[p]ykmip-server|[c]haron|[q]emu-system/) next
      start = "?"; f = "/proc/" pid "/stat"
      if ((getline line < f) > 0) { sub(/.*\) /, "", line); split(line, v, " "); start = v[20] }
      close(f)
      print "process " pid ":" start " " args
    }' "$state.exe" -
  rm -f "$state.exe"
  if command -v ip >/dev/null; then
    { ip netns list 2>/dev/null || true; } | awk '{print "netns " $1 " " $1}'
  fi
  if command -v losetup >/dev/null; then
    { losetup -ln -O NAME,BACK-FILE 2>/dev/null || true; } | awk '{n=$1; $1=""; print "loop " n " " n " ->" $0}'
  fi
  if command -v dmsetup >/dev/null && [ -e /dev/mapper/control ]; then
    { dmsetup ls 2>/dev/null || true; } | awk '$1 != "No" {print "dm " $1 " " $1}'
  fi
  # Mount points (field 5) of this mount namespace. /run/netns itself is the
  # shared bind mount that the first `ip netns add` on a host creates and
  # keeps: infrastructure, not a leak (the namespaces under it are checked).
  awk '$5 != "/run/netns" {print "mount " $5 " " $5}' /proc/self/mountinfo
}

case "$mode" in
  before)
    snapshot | sort -u >"$state"
    ;;
  after)
    [ -f "$state" ] || {
      echo "leakcheck: no snapshot $state (run 'before' first)" >&2
      exit 2
    }
    # Processes killed at the very end may take a moment to go: look again
    # for up to 5 s before calling anything a leak.
    for attempt in 1 2 3 4 5 6; do
      leaks=$(snapshot | sort -u | awk 'NR==FNR {seen[$1 " " $2]=1; next} !(($1 " " $2) in seen)' "$state" -)
      [ -z "$leaks" ] && break
      [ "$attempt" -lt 6 ] && sleep 1
    done
    if [ -n "$leaks" ]; then
      echo "leakcheck: the tests left behind what they started (not there before ctest):" >&2
      echo "$leaks" | sed 's/^/  /' >&2
      echo "leakcheck: find the test that starts it and make it clean up (kill the process group, ip netns del," \
        "losetup -d, dmsetup remove, umount); remove these by hand before the next run." >&2
      exit 1
    fi
    echo "leakcheck: nothing left behind"
    ;;
  *) usage ;;
esac
