#!/usr/bin/env bash
# Tests clean up what they start. scripts/test calls this before and after
# ctest; "after" fails when the suite left behind something that was not there
# before:
#   - a process run from or working in the build tree, or a pykmip-server,
#     charon or qemu process (except one working in another checkout's build
#     tree, on a shared machine; zombies, already dead, do not count),
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
case "$state" in /*) ;; *) state="$PWD/$state" ;; esac
# This script, its pipelines and the shells that called it are not leaks:
# work from / and skip the caller chain.
cd /
callers=" "
p=$$
while [ -n "$p" ] && [ "$p" != 0 ]; do
  callers="$callers$p "
  p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
done

# One line per object: "<kind> <identity> <description>". Identities are
# stable across the two snapshots (pid + start time, so a reused pid is new).
snapshot() {
  # Processes: pid, state and command line from ps; the executable and the
  # working directory from /proc/PID/{exe,cwd}; the start time from
  # /proc/PID/stat (field 22). Ours: run from the build tree, or working in
  # it (children of the tests inherit their cwd), or a pykmip-server, charon
  # or qemu that does not work in another build tree (a CMakeCache.txt above
  # its cwd: another checkout's tests on a shared machine). Zombies are dead
  # already; kernel threads ([name]) are not ours. The bracketed patterns keep
  # this awk from matching its own command line.
  { find /proc/[0-9]*/exe /proc/[0-9]*/cwd -maxdepth 0 -printf '%p %l\n' 2>/dev/null || true; } >"$state.proc"
  ps -e -o pid=,stat=,args= | awk -v build="$build" -v callers="$callers" '
    function foreign(dir,   p, f, line) {
      p = dir
      while (p != "" && p != "/") {
        if (p == build) return 0
        f = p "/CMakeCache.txt"
        if ((getline line < f) > 0) { close(f); return 1 }
        close(f)
        sub(/\/[^\/]*$/, "", p)
      }
      return 0
    }
    NR == FNR { split($1, k, "/"); link[k[3] "/" k[4]] = $2; next }
    {
      pid = $1; st = $2
      if (st ~ /^Z/ || index(callers, " " pid " ")) next
      args = $0; sub(/^ *[0-9]+ +[^ ]+ +/, "", args)
      if (args ~ /^\[/) next
      exe = link[pid "/exe"]; cwd = link[pid "/cwd"]
      mine = index(exe, build "/") == 1 || cwd == build || index(cwd, build "/") == 1
      if (!mine && args ~ /[p]ykmip-server|[c]haron|[q]emu-system/ && !foreign(cwd)) mine = 1
      if (!mine) next
      start = "?"; f = "/proc/" pid "/stat"
      if ((getline line < f) > 0) { sub(/.*\) /, "", line); split(line, v, " "); start = v[20] }
      close(f)
      print "process " pid ":" start " " args
    }' "$state.proc" -
  rm -f "$state.proc"
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
