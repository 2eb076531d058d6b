#!/usr/bin/env bash
# The demo: sets everything up, then shows a build directory at work on the
# example tree in examples/hello: init, new, mount, build inside the mount,
# write, list, umount, mount again (the change is still there), status,
# branch, commit, log, and a builddisk that a branch writes privately.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
buildfs=$("$top/tools/build.sh" buildfs)
ws=${BUILDFS_DEMO_WS:-/var/tmp/buildfs-demo}

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }
cleanup() {
  cd /
  for m in $(awk -v ws="$ws/" 'index($2, ws) == 1 && $3 ~ /^fuse/ {print $2}' /proc/mounts); do
    umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
rm -rf "$ws"
run "$buildfs" init "$ws"
cd "$ws"
run "$buildfs" new demo --from-dir "$top/examples/hello"
run "$buildfs" mount demo
run ls -l demo
run cat demo/README
step "cd demo && make && ./hello"
(cd demo && make && ./hello)
step "echo 'a note' > demo/notes.txt && rm demo/README && mv demo/src demo/source"
echo 'a note' > demo/notes.txt
rm demo/README
mv demo/src demo/source
run "$buildfs" list
run "$buildfs" umount demo
run "$buildfs" mount demo
run ls demo demo/source
run cat demo/notes.txt
step "./demo/hello"
./demo/hello
run "$buildfs" status demo
run "$buildfs" diff demo notes.txt
run "$buildfs" branch demo bugfix
run "$buildfs" mount bugfix
step "echo 'only on the branch' >> bugfix/notes.txt"
echo 'only on the branch' >> bugfix/notes.txt
run cat demo/notes.txt bugfix/notes.txt
run "$buildfs" commit demo -m "built hello, moved src/"
run "$buildfs" log demo
run "$buildfs" status demo
run "$buildfs" list --json
run "$buildfs" disk create hello --size 16M -b demo
step "e2fsck -fy bugfix/cache/disks/hello.img    # bugfix writes its own copy of the shared image"
e2fsck -fy bugfix/cache/disks/hello.img
run "$buildfs" disk list -b bugfix
run "$buildfs" disk list -b demo
run "$buildfs" umount demo
run "$buildfs" umount bugfix
printf "\nThe demo workspace is %s: try %s -C %s list\n" "$ws" "$buildfs" "$ws"
printf "(cmake --install %s/build puts buildfs on your PATH)\n" "$top"
